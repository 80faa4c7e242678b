"""The in-memory model of Redis nodes and their replication, shared by the RESP servers and the dashboard.

Replication is modelled by data, not by timers: every write gets a globally unique id and each node holds
the ordered log of the writes it has applied. A replica whose link is up holds a prefix of its master's log
(all of it, unless a replication lag is injected). A partial resync is possible exactly when the replica's
log is a prefix of the new master's log; otherwise it is a full sync and the replica takes the master's
data, as real Redis does, including the unkind case of a master that restarted empty and wipes its replicas.

Time only matters for the fields that report ages (`master_last_io_seconds_ago`,
`master_link_down_since_seconds`) and for a hung master, whose replicas keep the link up until
`repl-timeout` expires. The clock can be advanced by tests.
"""
from __future__ import annotations

import fnmatch
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .resp import Error, Status

REPL_TIMEOUT = 60.0
REPL_PING_PERIOD = 10
WRITE_BYTES = 32
REDIS_VERSION = "7.0.15"

NOAUTH = Error("NOAUTH Authentication required.")
WRONGPASS = Error("WRONGPASS invalid username-password pair or user is disabled.")
AUTH_NOT_CONFIGURED = Error(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?")
HELLO_NOAUTH = Error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> "
    "AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol "
    "version at the same time")
READONLY = Error("READONLY You can't write against a read only replica.")
NO_AUTH_COMMANDS = frozenset({"auth", "hello", "quit"})

CLOSE = object()  # a reply marker: send the preceding reply, then close the connection


class Clock:
    """Wall-clock time that tests can move forward without sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass
class Write:
    write_id: int
    end_offset: int
    key: str
    value: bytes


@dataclass
class Node:
    host: str
    port: int
    run_id: str
    replid: str
    password: Optional[str] = None
    users: dict[str, str] = field(default_factory=dict)
    priority: int = 100
    ping_period: int = REPL_PING_PERIOD  # repl-ping-replica-period: how often it pings its replicas
    replid2: str = "0" * 40
    # Codis's own redis build (codis-server) answers SLOTSINFO; the Codis 3 dashboard refuses plain Redis.
    codis_server: bool = False
    # faults
    killed: bool = False
    hung_since: Optional[float] = None
    slow_ms: int = 0
    flaky_every: int = 0
    partition: Optional[str] = None  # None | "hang" | "refuse": only what the observer sees
    link_cut: bool = False  # the replication link from its master is broken (a stale replica)
    lag_writes: int = 0
    loading: bool = False
    syncing: bool = False
    # replication state
    log: list[Write] = field(default_factory=list)
    master: Optional[str] = None
    link_up: bool = False
    link_since: float = 0.0
    link_down_since: Optional[float] = None
    last_io: float = 0.0
    started: float = 0.0
    connections: int = 0

    @property
    def addr(self) -> str:
        return "%s:%d" % (self.host, self.port)

    @property
    def offset(self) -> int:
        return self.log[-1].end_offset if self.log else 0

    @property
    def role(self) -> str:
        return "slave" if self.master else "master"

    @property
    def hung(self) -> bool:
        return self.hung_since is not None

    @property
    def keys(self) -> dict[str, bytes]:
        return {w.key: w.value for w in self.log}

    def auth_required(self) -> bool:
        return self.password is not None


@dataclass
class Session:
    """Per-connection state of a client."""
    authenticated: bool
    protocol: int = 2
    name: Optional[str] = None
    db: int = 0
    client_id: int = 0
    peer: str = ""


class World:
    """All nodes, under one lock; every mutation goes through a method here."""

    def __init__(self, seed: int = 0, clock: Optional[Clock] = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.nodes: dict[str, Node] = {}
        self._rng = random.Random(seed)
        self._next_write = 1
        self._next_client = 1
        self.listeners: list[Callable[[str, Node], None]] = []

    # ------------------------------------------------------------------ nodes
    def _hex40(self) -> str:
        return "%040x" % self._rng.getrandbits(160)

    def add_node(self, host: str, port: int, password: Optional[str] = None,
                 users: Optional[dict[str, str]] = None) -> Node:
        with self.lock:
            now = self.clock.now()
            node = Node(host=host, port=port, run_id=self._hex40(), replid=self._hex40(),
                        password=password, users=dict(users or {}), started=now)
            self.nodes[node.addr] = node
            return node

    def node(self, addr: str) -> Node:
        try:
            return self.nodes[addr]
        except KeyError:
            raise KeyError("no simulated node at %s" % addr) from None

    def _notify(self, event: str, node: Node) -> None:
        for listener in self.listeners:
            listener(event, node)

    # ------------------------------------------------------------------ faults
    def kill(self, addr: str) -> None:
        with self.lock:
            node = self.node(addr)
            node.killed = True
            node.hung_since = None
            self._sync_all()
        self._notify("kill", node)

    def revive(self, addr: str) -> None:
        """Bring a node back. A killed one restarts as an empty master, like Redis without persistence."""
        with self.lock:
            node = self.node(addr)
            was_killed = node.killed
            if was_killed:
                now = self.clock.now()
                node.killed = False
                node.log = []
                node.master = None
                node.link_up = False
                node.link_down_since = None
                node.replid = self._hex40()
                node.replid2 = "0" * 40
                node.run_id = self._hex40()
                node.started = now
            node.hung_since = None
            node.partition = None
            node.slow_ms = 0
            node.flaky_every = 0
            self._sync_all()
        self._notify("revive" if was_killed else "resume", node)

    def hang(self, addr: str) -> None:
        with self.lock:
            node = self.node(addr)
            if not node.killed and node.hung_since is None:
                node.hung_since = self.clock.now()
        self._notify("hang", node)

    def set_partition(self, addr: str, mode: Optional[str]) -> None:
        if mode not in (None, "hang", "refuse"):
            raise ValueError("partition mode must be 'hang', 'refuse' or None")
        with self.lock:
            node = self.node(addr)
            node.partition = mode
        self._notify("partition", node)

    def set_slow(self, addr: str, ms: int) -> None:
        with self.lock:
            self.node(addr).slow_ms = int(ms)

    def set_flaky(self, addr: str, every: int) -> None:
        with self.lock:
            self.node(addr).flaky_every = int(every)

    def cut_link(self, addr: str, cut: bool = True) -> None:
        """Break (or mend) the replication link of a replica while everything else stays up."""
        with self.lock:
            self.node(addr).link_cut = cut
            self._sync_all()

    def set_lag(self, addr: str, writes: int) -> None:
        with self.lock:
            self.node(addr).lag_writes = int(writes)
            self._sync_all()

    def set_priority(self, addr: str, priority: int) -> None:
        with self.lock:
            self.node(addr).priority = int(priority)

    def set_loading(self, addr: str, loading: bool) -> None:
        with self.lock:
            self.node(addr).loading = loading

    def set_syncing(self, addr: str, syncing: bool) -> None:
        with self.lock:
            self.node(addr).syncing = syncing

    # ------------------------------------------------------------------ data
    def write(self, addr: str, count: int = 1, key: Optional[str] = None,
              value: Optional[bytes] = None) -> list[int]:
        """Writes acknowledged by the node at addr (which must be a live master)."""
        with self.lock:
            node = self.node(addr)
            if node.killed or node.hung:
                raise ConnectionError("%s is not answering" % addr)
            if node.master is not None:
                raise ValueError("%s is a replica: READONLY" % addr)
            ids = [self._append(node, key, value) for dummy in range(count)]
            self._sync_all()
            return ids

    def _append(self, node: Node, key: Optional[str], value: Optional[bytes]) -> int:
        wid = self._next_write
        self._next_write += 1
        k = key if key is not None else "key:%d" % wid
        v = value if value is not None else b"value:%d" % wid
        node.log.append(Write(wid, node.offset + WRITE_BYTES + len(k) + len(v), k, v))
        node.last_io = self.clock.now()
        return wid

    # ------------------------------------------------------------------ replication
    def slaveof(self, addr: str, master: Optional[str]) -> str:
        """Apply SLAVEOF to the node; returns the status text Redis answers."""
        with self.lock:
            node = self.node(addr)
            if master is None:
                if node.master is not None:
                    node.master = None
                    node.link_up = False
                    node.link_down_since = None
                    # Redis keeps the data and the offset and starts a new replication history, remembering
                    # the one it continued from as replid2.
                    node.replid2 = node.replid
                    node.replid = self._hex40()
                    self._sync_all()
                return "OK"
            if node.master == master:
                return "OK Already connected to specified master"
            node.master = master
            node.link_up = False
            node.link_down_since = None
            self._sync_all()
            return "OK"

    def _reachable(self, node: Node, master: Optional[Node], now: float) -> tuple[bool, float]:
        """Whether the replica's link to its master is up now, and since when it is down if not."""
        if master is None or master.killed or node.link_cut or master is node:
            return False, now
        if master.hung_since is not None and now - master.hung_since >= REPL_TIMEOUT:
            return False, master.hung_since + REPL_TIMEOUT
        return True, now

    def _sync_node(self, node: Node, now: float, depth: int = 0) -> None:
        if node.master is None or node.killed or node.hung:
            return
        master = self.nodes.get(node.master)
        if master is not None and master.master is not None and depth < 8:
            self._sync_node(master, now, depth + 1)
        up, down_at = self._reachable(node, master, now)
        if not up:
            if node.link_up:
                node.link_up = False
                node.link_down_since = down_at
            return
        assert master is not None
        mlog = master.log
        target = mlog[: max(len(mlog) - node.lag_writes, 0)]
        if not node.link_up:
            node.link_up = True
            node.link_since = now
            node.link_down_since = None
            node.last_io = now
        if node.log and not _is_prefix(node.log, mlog):
            node.log = list(target)  # full sync: the replica's own history is discarded
            node.last_io = now
        elif len(target) != len(node.log):
            node.log = list(target)
            node.last_io = now
        node.replid = master.replid

    def _sync_all(self) -> None:
        now = self.clock.now()
        for node in self.nodes.values():
            self._sync_node(node, now)

    def refresh(self, node: Node) -> None:
        """Bring lazily computed state (a hung master's repl-timeout) up to date before reading."""
        with self.lock:
            now = self.clock.now()
            self._sync_node(node, now)
            for other in self.replicas_of(node.addr):
                self._sync_node(other, now)

    def replicas_of(self, addr: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.master == addr and not n.killed]

    # ------------------------------------------------------------------ RESP commands
    def new_session(self, node: Node, peer: str = "") -> Session:
        with self.lock:
            cid = self._next_client
            self._next_client += 1
        return Session(authenticated=not node.auth_required() and "default" not in node.users,
                       client_id=cid, peer=peer)

    def execute(self, node: Node, session: Session, args: list[bytes]) -> Any:
        with self.lock:
            return _execute(self, node, session, args)


def _is_prefix(short: list[Write], long: list[Write]) -> bool:
    n = len(short)
    return n <= len(long) and (n == 0 or long[n - 1].write_id == short[-1].write_id)


def _wrong_args(name: str) -> Error:
    return Error("ERR wrong number of arguments for '%s' command" % name)


def _check_credentials(node: Node, user: str, password: str) -> bool:
    if user == "default":
        if "default" in node.users:
            return node.users["default"] == password
        return node.password is not None and node.password == password
    return user in node.users and node.users[user] == password


def _auth(node: Node, session: Session, args: list[str]) -> Any:
    if len(args) not in (1, 2):
        return Error("ERR syntax error") if len(args) > 2 else _wrong_args("auth")
    if len(args) == 1 and node.password is None and "default" not in node.users:
        return AUTH_NOT_CONFIGURED
    user, password = ("default", args[0]) if len(args) == 1 else (args[0], args[1])
    if _check_credentials(node, user, password):
        session.authenticated = True
        return Status("OK")
    return WRONGPASS


def _hello(world: World, node: Node, session: Session, args: list[str]) -> Any:
    proto = session.protocol
    i = 0
    if args:
        try:
            proto = int(args[0])
        except ValueError:
            return Error("ERR Protocol version is not an integer or out of range")
        if proto not in (2, 3):
            return Error("NOPROTO unsupported protocol version")
        i = 1
    while i < len(args):
        opt = args[i].lower()
        if opt == "auth" and i + 2 < len(args):
            if not _check_credentials(node, args[i + 1], args[i + 2]):
                return WRONGPASS
            session.authenticated = True
            i += 3
        elif opt == "setname" and i + 1 < len(args):
            session.name = args[i + 1]
            i += 2
        else:
            return Error("ERR Syntax error in HELLO option '%s'" % args[i])
    if not session.authenticated:
        return HELLO_NOAUTH
    session.protocol = proto
    return {"server": "redis", "version": REDIS_VERSION, "proto": proto, "id": session.client_id,
            "mode": "standalone", "role": "replica" if node.master else "master", "modules": []}


def _execute(world: World, node: Node, session: Session, raw: list[bytes]) -> Any:
    name = raw[0].decode(errors="replace").lower()
    args = [a.decode(errors="replace") for a in raw[1:]]
    if not session.authenticated and name not in NO_AUTH_COMMANDS:
        return NOAUTH
    handler = _COMMANDS.get(name)
    if handler is None:
        shown = "".join("'%s' " % a[:128] for a in args[:20])
        return Error("ERR unknown command '%s', with args beginning with: %s" % (raw[0].decode(
            errors="replace")[:128], shown))
    if name in ("set", "get", "dbsize", "info", "role") and node.loading:
        return Error("LOADING Redis is loading the dataset in memory")
    return handler(world, node, session, args)


def _cmd_ping(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) > 1:
        return _wrong_args("ping")
    return args[0] if args else Status("PONG")


def _cmd_echo(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return args[0] if len(args) == 1 else _wrong_args("echo")


def _cmd_quit(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return (Status("OK"), CLOSE)


def _cmd_select(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) != 1:
        return _wrong_args("select")
    try:
        db = int(args[0])
    except ValueError:
        return Error("ERR value is not an integer or out of range")
    if not 0 <= db < 16:
        return Error("ERR DB index is out of range")
    session.db = db
    return Status("OK")


def _cmd_client(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if not args:
        return _wrong_args("client")
    sub = args[0].lower()
    if sub == "setname" and len(args) == 2:
        session.name = args[1] or None
        return Status("OK")
    if sub == "getname":
        return session.name
    if sub == "id":
        return session.client_id
    if sub == "setinfo" and len(args) == 3:
        return Status("OK")
    if sub == "info":
        return "id=%d addr=%s name=%s db=%d resp=%d\n" % (
            session.client_id, session.peer, session.name or "", session.db, session.protocol)
    return Error("ERR unknown subcommand '%s'. Try CLIENT HELP." % args[0])


def _config_values(node: Node) -> dict[str, str]:
    return {"replica-priority": str(node.priority), "slave-priority": str(node.priority),
            "repl-timeout": str(int(REPL_TIMEOUT)), "repl-ping-replica-period": str(node.ping_period),
            "port": str(node.port), "bind": node.host}


def _cmd_config(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if not args:
        return _wrong_args("config")
    sub = args[0].lower()
    if sub == "get" and len(args) >= 2:
        values = _config_values(node)
        out: dict[str, str] = {}
        for pattern in args[1:]:
            for k, v in values.items():
                if fnmatch.fnmatchcase(k, pattern.lower()):
                    out[k] = v
        return out
    if sub == "set" and len(args) == 3:
        if args[1].lower() in ("replica-priority", "slave-priority"):
            try:
                node.priority = int(args[2])
            except ValueError:
                return Error("ERR CONFIG SET failed (possibly related to argument '%s') - argument "
                             "couldn't be parsed into an integer" % args[1])
            return Status("OK")
        return Error("ERR Unknown option or number of arguments for CONFIG SET - '%s'" % args[1])
    return Error("ERR unknown subcommand '%s'. Try CONFIG HELP." % args[0])


def _cmd_slaveof(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) != 2:
        return _wrong_args("slaveof")
    if args[0].lower() == "no" and args[1].lower() == "one":
        return Status(world.slaveof(node.addr, None))
    try:
        port = int(args[1])
    except ValueError:
        return Error("ERR value is not an integer or out of range")
    return Status(world.slaveof(node.addr, "%s:%d" % (args[0], port)))


def _cmd_role(world: World, node: Node, session: Session, args: list[str]) -> Any:
    world.refresh(node)
    if node.master is None:
        replicas = [[r.host, str(r.port), str(r.offset)] for r in world.replicas_of(node.addr)
                    if r.link_up]
        return ["master", node.offset, replicas]
    host, port = node.master.rsplit(":", 1)
    state = "connected" if node.link_up else "connect"
    return ["slave", host, int(port), state, node.offset if node.link_up else -1]


def _cmd_set(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) < 2:
        return _wrong_args("set")
    if node.master is not None:
        return READONLY
    world._append(node, args[0], args[1].encode())
    world._sync_all()
    return Status("OK")


def _cmd_get(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) != 1:
        return _wrong_args("get")
    for w in reversed(node.log):
        if w.key == args[0]:
            return w.value
    return None


def _cmd_dbsize(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return len(node.keys)


def _cmd_command(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return []


def _cmd_slotsinfo(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if not node.codis_server:
        return Error("ERR unknown command 'SLOTSINFO', with args beginning with: ")
    return []  # no keys in any slot that the simulator tracks


def _cmd_info(world: World, node: Node, session: Session, args: list[str]) -> Any:
    world.refresh(node)
    return render_info(world, node, [a.lower() for a in args])


_COMMANDS: dict[str, Callable[[World, Node, Session, list[str]], Any]] = {
    "ping": _cmd_ping, "echo": _cmd_echo, "quit": _cmd_quit, "select": _cmd_select,
    "client": _cmd_client, "config": _cmd_config, "slaveof": _cmd_slaveof, "replicaof": _cmd_slaveof,
    "role": _cmd_role, "info": _cmd_info, "set": _cmd_set, "get": _cmd_get, "dbsize": _cmd_dbsize,
    "command": _cmd_command, "slotsinfo": _cmd_slotsinfo,
    "auth": lambda w, n, s, a: _auth(n, s, a),
    "hello": _hello,
}

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
        syncing = node.syncing
        lines = ["role:slave", "master_host:%s" % host, "master_port:%s" % port,
                 "master_link_status:%s" % ("up" if node.link_up else "down")]
        if node.link_up:
            master = world.nodes.get(node.master)
            if master is not None and master.hung_since is not None:
                last_io = int(now - max(master.hung_since, node.last_io))
            else:
                period = master.ping_period if master is not None else REPL_PING_PERIOD
                last_io = int(now - max(node.last_io, node.link_since)) % period
            lines.append("master_last_io_seconds_ago:%d" % last_io)
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
              "second_repl_offset:-1", "repl_backlog_active:%d" % int(bool(node.log)),
              "repl_backlog_size:1048576"]
    return lines


def _info_keyspace(world: World, node: Node, now: float) -> list[str]:
    keys = len(node.keys)
    return ["db0:keys=%d,expires=0,avg_ttl=0" % keys] if keys else []


_SECTION_RENDERERS: dict[str, Callable[[World, Node, float], list[str]]] = {
    "server": _info_server, "clients": _info_clients, "persistence": _info_persistence,
    "stats": _info_stats, "replication": _info_replication, "keyspace": _info_keyspace,
}

Reply = Union[Status, Error, str, int, list, dict, None]
