"""INFO as the fake Redis nodes render it, section by section, from the world in model.py."""
from __future__ import annotations

from typing import Callable

from .model import REDIS_VERSION, Node, World

DEFAULT_SECTIONS = ("server", "clients", "persistence", "stats", "replication", "keyspace")


def render_info(world: World, node: Node, sections: list[str]) -> str:
    wanted: list[str] = []
    for s in sections or ["default"]:
        if s in ("default", "all", "everything"):
            wanted.extend(DEFAULT_SECTIONS)
        elif s in DEFAULT_SECTIONS:
            wanted.append(s)
    now = world.clock.now()
    blocks = []
    for section in dict.fromkeys(wanted):
        lines = _SECTION_RENDERERS[section](world, node, now)
        blocks.append("# %s\r\n%s\r\n" % (section.capitalize(), "\r\n".join(lines)))
    return "\r\n".join(blocks)


def _info_server(world: World, node: Node, now: float) -> list[str]:
    return ["redis_version:%s" % REDIS_VERSION, "redis_mode:standalone", "os:Simulated",
            "run_id:%s" % node.run_id, "tcp_port:%d" % node.port,
            "uptime_in_seconds:%d" % int(now - node.started)]


def _info_clients(world: World, node: Node, now: float) -> list[str]:
    return ["connected_clients:1", "blocked_clients:0"]


def _info_persistence(world: World, node: Node, now: float) -> list[str]:
    return ["loading:%d" % int(node.loading), "async_loading:0", "rdb_changes_since_last_save:0",
            "aof_enabled:0"]


def _info_stats(world: World, node: Node, now: float) -> list[str]:
    return ["total_connections_received:%d" % node.connections, "sync_full:0"]


def _info_replication(world: World, node: Node, now: float) -> list[str]:
    if node.master is None:
        lines = ["role:master"]
        replicas = [r for r in world.replicas_of(node.addr) if r.link_up]
        lines.append("connected_slaves:%d" % len(replicas))
        for i, r in enumerate(replicas):
            lines.append("slave%d:ip=%s,port=%d,state=online,offset=%d,lag=0" % (
                i, r.host, r.port, r.offset))
    else:
        host, port = node.master.rsplit(":", 1)
        # Redis reports a sync in progress only for the transfer, not while the master's diskless delay runs.
        syncing = node.syncing
        lines = ["role:slave", "master_host:%s" % host, "master_port:%s" % port,
                 "master_link_status:%s" % ("up" if node.link_up else "down")]
        if node.link_up:
            # The last write or ping it received (a frozen master sends neither), or the link's handshake.
            heard = max(node.last_io, node.link_since)
            # As Redis does: the difference of two whole-second clocks, up to a second more than the age.
            lines.append("master_last_io_seconds_ago:%d" % (int(now) - int(heard)))
        else:
            lines.append("master_last_io_seconds_ago:-1")
        lines.append("master_sync_in_progress:%d" % int(syncing))
        lines.append("slave_read_repl_offset:%d" % node.offset)
        lines.append("slave_repl_offset:%d" % node.offset)
        if not node.link_up:
            down = -1 if node.link_down_since is None else int(now - node.link_down_since)
            lines.append("master_link_down_since_seconds:%d" % down)
        lines += ["slave_priority:%d" % node.priority, "slave_read_only:1", "replica_announced:1",
                  "connected_slaves:0"]
    lines += ["master_failover_state:no-failover", "master_replid:%s" % node.replid,
              "master_replid2:%s" % node.replid2, "master_repl_offset:%d" % node.offset,
              "second_repl_offset:%d" % node.second_offset, "repl_backlog_active:%d" % int(bool(node.log)),
              "repl_backlog_size:1048576"]
    return lines


def _info_keyspace(world: World, node: Node, now: float) -> list[str]:
    keys = len(node.keys)
    return ["db0:keys=%d,expires=0,avg_ttl=0" % keys] if keys else []


_SECTION_RENDERERS: dict[str, Callable[[World, Node, float], list[str]]] = {
    "server": _info_server, "clients": _info_clients, "persistence": _info_persistence,
    "stats": _info_stats, "replication": _info_replication, "keyspace": _info_keyspace,
}
