"""A whole simulated Codis cluster: fake Redis nodes, a dashboard, fault methods and truth helpers."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from .dashboard2 import Codis2Dashboard
from .http_base import DashboardFaults
from .dashboard3 import Codis3Dashboard
from .lifecycle import Closing
from .model import Clock, Node, World
from .redis_server import NodeServerHost


class Cluster(Closing):
    """Use `with Cluster.start(groups=3, slaves=2) as c:`; everything binds to 127.0.0.1."""

    def __init__(self, groups: int = 3, slaves: int = 2, password: Optional[str] = None,
                 seed: int = 0, users: Optional[dict[str, str]] = None, dashboard_port: int = 0,
                 product_name: str = "codis-demo", redis_timeout: float = 5.0,
                 sort_servers: bool = True, codis: int = 2, product_auth: str = "",
                 stats_interval: float = 1.0, poll_on_fault: bool = True) -> None:
        """`codis=3` serves a Codis 3.x dashboard (topom API) and makes every node a codis-server.
        `poll_on_fault=False` leaves the Codis 3 dashboard's view to its own stats loop (about once a second, as
        the real one): a fault then shows in its stats only after the next poll."""
        self.poll_on_fault = poll_on_fault
        self.world = World(seed=seed, clock=Clock())
        self.host = NodeServerHost(self.world)
        self.codis = codis
        self.dashboard: Any  # Codis2Dashboard or Codis3Dashboard: the same reading and fault methods
        if codis == 3:
            self.dashboard = Codis3Dashboard(self.world, port=dashboard_port, product_name=product_name,
                                             product_auth=product_auth or (password or ""),
                                             redis_timeout=redis_timeout, stats_interval=stats_interval)
        elif codis == 2:
            self.dashboard = Codis2Dashboard(self.world, port=dashboard_port, product_name=product_name,
                                             redis_timeout=redis_timeout)
        else:
            raise ValueError("codis must be 2 or 3, got %r" % codis)
        if codis == 2:
            self.dashboard.state.sort_servers = sort_servers
        self.password = password
        self.users = dict(users or {})
        self.acknowledged: dict[int, list[int]] = {}
        self._closed = False
        self._add_groups_or_close(groups, slaves)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.dashboard.stop()
        self.host.close()

    # ------------------------------------------------------------------ building
    def add_nodes(self, count: int) -> list[Node]:
        nodes = self.host.add_nodes(count, password=self.password, users=self.users)
        for node in nodes:
            node.codis_server = self.codis == 3
        return nodes

    def add_group(self, gid: int, slaves: int) -> list[str]:
        nodes = self.add_nodes(1 + slaves)
        master = nodes[0]
        for replica in nodes[1:]:
            self.world.slaveof(replica.addr, master.addr)
        self.dashboard.seed_group(gid, [(master.addr, "master")] + [(n.addr, "slave") for n in nodes[1:]])
        self.acknowledged.setdefault(gid, [])
        self.dashboard.poll()
        return [n.addr for n in nodes]

    # ------------------------------------------------------------------ reading
    @property
    def clock(self) -> Clock:
        return self.world.clock

    @property
    def nodes(self) -> dict[str, Node]:
        return self.world.nodes

    @property
    def audit(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.dashboard.audit]

    @property
    def demoted_type(self) -> str:
        """What the dashboard makes of a promoted-away master: Codis 2 offline, Codis 3 a slave at the end."""
        return "offline" if self.codis == 2 else "slave"

    def role(self, addr: str) -> dict[str, Any]:
        """The node's true replication state, read from the model (not over TCP)."""
        with self.world.lock:
            node = self.world.node(addr)
            self.world.refresh(node)
            return {"role": node.role, "master": node.master, "link_up": node.link_up,
                    "offset": node.offset, "alive": not node.killed, "hung": node.hung,
                    "keys": len(node.keys), "replid": node.replid, "ping_period": node.ping_period}

    def lost_writes(self, gid: int) -> list[int]:
        """Writes acknowledged to the group's clients that its current master does not hold."""
        master = self.master_of(gid)
        acked = self.acknowledged.get(gid, [])
        if master is None:
            return list(acked)
        with self.world.lock:
            held = {w.write_id for w in self.world.node(master).log}
        return [w for w in acked if w not in held]

    # ------------------------------------------------------------------ writing
    def write(self, gid: int, count: int = 1) -> list[int]:
        """Write through the group's dashboard master, as a proxy would; returns acknowledged ids."""
        master = self.master_of(gid)
        if master is None:
            raise ValueError("group %d has no single master in the dashboard" % gid)
        ids = self.world.write(master, count)
        self.acknowledged.setdefault(gid, []).extend(ids)
        return ids

    # ------------------------------------------------------------------ node faults
    def kill(self, addr: str) -> None:
        self.world.kill(addr)
        self._dashboard_notices()

    def hang(self, addr: str) -> None:
        self.world.hang(addr)
        self._dashboard_notices()

    def revive(self, addr: str) -> None:
        self.world.revive(addr)
        self._dashboard_notices()

    def partition(self, addr: str, mode: Optional[str] = "hang") -> None:
        """Cut the observer (every TCP client) off from the node; replication links stay up."""
        self.world.set_partition(addr, mode)

    def heal(self, addr: str) -> None:
        self.world.set_partition(addr, None)

    def _dashboard_notices(self) -> None:
        """A Codis 3 dashboard polls every server itself; here it has polled right after the fault, so
        that a test sees one definite timing (the stats loop still runs on its own every stats_interval)."""
        if self.poll_on_fault and not self.dashboard.faults.stale_stats:
            self.dashboard.poll()

    def advance(self, seconds: float) -> None:
        """Time passes on the simulator's clock, and a Codis 3 dashboard's stats loop notices."""
        self.clock.advance(seconds)
        self._dashboard_notices()

    # ------------------------------------------------------------------ proxies (Codis 3)
    def add_proxy(self) -> str:
        token = self.dashboard.add_proxy()
        self._dashboard_notices()
        return token

    def hang_proxy(self, token: str, hung: bool = True) -> None:
        """The proxy stops (SIGSTOP): its port takes connections and answers nothing; see Codis3Dashboard."""
        self.dashboard.hang_proxy(token, hung)
        self._dashboard_notices()

    def kill_proxy(self, token: str) -> None:
        """The proxy dies (its host went down with a master, say) but stays registered with the dashboard."""
        self.dashboard.kill_proxy(token)
        self._dashboard_notices()

    def slow(self, addr: str, ms: int) -> None:
        self.world.set_slow(addr, ms)

    def flaky(self, addr: str, every: int) -> None:
        self.world.set_flaky(addr, every)

    def cut_link(self, addr: str, cut: bool = True) -> None:
        self.world.cut_link(addr, cut)

    def set_lag(self, addr: str, writes: int) -> None:
        self.world.set_lag(addr, writes)

    def set_priority(self, addr: str, priority: int) -> None:
        self.world.set_priority(addr, priority)

    def set_replication(self, addr: str, ping_period: Optional[int] = None,
                        sync_delay: Optional[float] = None) -> None:
        """A node's repl-ping-replica-period (10 s by default) and repl-diskless-sync-delay (the simulator's
        default 0; Redis's 5 s keeps a replica's data for 5 s before a full sync replaces it)."""
        self.world.set_replication(addr, ping_period, sync_delay)

    def set_loading(self, addr: str, loading: bool = True) -> None:
        self.world.set_loading(addr, loading)

    def set_syncing(self, addr: str, syncing: bool = True) -> None:
        self.world.set_syncing(addr, syncing)

    def slaveof(self, addr: str, master: Optional[str]) -> None:
        self.world.slaveof(addr, master)
        self._dashboard_notices()

    # ------------------------------------------------------------------ dashboard faults
    def dashboard_fault(self, name: str, value: Any = True) -> None:
        """down, garbage, truncated, slow_ms, promote_500_after_commit, lock_conflict, proxies_hold (with a proxy
        registered); Codis 3: promote_stuck, promote_slaveof_fails, migration, stale_stats."""
        name = name.replace("-", "_")
        if name == "down":
            self.dashboard.set_down(bool(value))
            return
        if name == "slow":
            name = "slow_ms"
        if not hasattr(self.dashboard.faults, name):
            raise ValueError("unknown dashboard fault %r" % name)
        current = getattr(self.dashboard.faults, name)
        setattr(self.dashboard.faults, name, type(current)(value))

    def clear_dashboard_faults(self) -> None:
        self.dashboard.set_down(False)
        for f in dataclasses.fields(DashboardFaults):
            if f.name != "down":
                setattr(self.dashboard.faults, f.name, f.default)

    def inject_server_type(self, gid: int, addr: str, server_type: Optional[str]) -> None:
        self.dashboard.inject_server(gid, addr, server_type)

    def status(self) -> dict[str, Any]:
        return {
            "dashboard": self.dashboard_url,
            "groups": {str(gid): {addr: {"type": t, **self.role(addr)} if addr in self.nodes else
                                  {"type": t} for addr, t in self.servers(gid).items()}
                       for gid in self.group_ids()},
        }
