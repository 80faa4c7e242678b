"""The replication world of the simulator: Redis nodes, their data and their replication links, and a clock.

Replication is modelled by data, not by timers: every write gets a globally unique id and each node holds
the ordered log of the writes it has applied. A replica whose link is up holds a prefix of its master's log
(all of it, unless a replication lag is injected). A partial resync is possible exactly when the replica's
log is a prefix of the new master's log; otherwise it is a full sync and the replica takes the master's
data, as real Redis does, including the unkind case of a master that restarted empty and wipes its replicas.

Time matters for the fields that report ages (`master_last_io_seconds_ago`, `master_link_down_since_seconds`),
for a hung master, whose replicas keep the link up until `repl-timeout` expires, for the master's pings and for a
delayed full sync. A master with replicas sends them a PING every `repl-ping-replica-period` (its `ping_period`,
10 s by default), 14 bytes of its replication stream: their offsets move and their last I/O resets even when
nobody writes, and a frozen or dead master sends none. A replica that needs a full sync keeps its data, its
history and its offset, with its link down and the sync in progress, for the master's `sync_delay`
(`repl-diskless-sync-delay`: Redis's default is 5 s, the simulator's 0) before it takes the master's data. Both are
computed lazily, when a node is read or changed. The clock can be advanced by tests.

The RESP command interpreter lives in commands.py, the INFO text in info.py.
"""
from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

REPL_TIMEOUT = 60.0
REPL_PING_PERIOD = 10
WRITE_BYTES = 32
PING_BYTES = 14  # "*1\r\n$4\r\nPING\r\n" in the replication stream
# After a long jump of the clock, at most this many pings are added at once (the offsets still move).
MAX_PINGS_AT_ONCE = 64
REDIS_VERSION = "7.0.15"


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
    key: str  # "" for a master's PING: in the stream, not in the data
    value: bytes
    at: float = 0.0  # when the master took it (a replica's last I/O is the newest it received)

    @property
    def is_ping(self) -> bool:
        return not self.key


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
    sync_delay: float = 0.0  # repl-diskless-sync-delay: how long a full sync from it waits before it starts
    config_file: bool = True  # started with a config file: CONFIG REWRITE works
    replid2: str = "0" * 40
    second_offset: int = -1  # INFO second_repl_offset: where its own history left replid2's
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
    last_ping: float = 0.0  # as a master: the last ping tick accounted for
    full_sync_since: Optional[float] = None  # as a replica: waiting since then for a full sync to start
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
        return {w.key: w.value for w in self.log if not w.is_ping}

    @property
    def write_ids(self) -> set[int]:
        """The clients' writes it holds (its pings are not data)."""
        return {w.write_id for w in self.log if not w.is_ping}

    @property
    def sync_in_progress(self) -> bool:
        return self.syncing or self.full_sync_since is not None

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
        # master address -> its replicas' addresses, in the order they were pointed at it (as Redis lists them):
        # reading a node's replicas is then not a walk over every node, which made a 2,000-server simulator
        # spend a millisecond of its one thread per probe.
        self._replicas: dict[str, dict[str, None]] = {}
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
                        password=password, users=dict(users or {}), started=now, last_ping=now)
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
            self._sync_from(node)
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
                self._point(node, None)
                node.link_up = False
                node.link_down_since = None
                node.replid = self._hex40()
                node.replid2 = "0" * 40
                node.run_id = self._hex40()
                node.started = now
                node.last_ping = now
                node.full_sync_since = None
            if node.hung_since is not None:
                node.last_ping = self.clock.now()  # a frozen master sent no ping; the next comes a period on
            node.hung_since = None
            node.partition = None
            node.slow_ms = 0
            node.flaky_every = 0
            self._sync_from(node)
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
            node = self.node(addr)
            node.link_cut = cut
            self._sync_from(node)

    def set_lag(self, addr: str, writes: int) -> None:
        with self.lock:
            node = self.node(addr)
            node.lag_writes = int(writes)
            self._sync_from(node)

    def set_priority(self, addr: str, priority: int) -> None:
        with self.lock:
            self.node(addr).priority = int(priority)

    def set_replication(self, addr: str, ping_period: Optional[int] = None,
                        sync_delay: Optional[float] = None) -> None:
        """CONFIG SET repl-ping-replica-period / repl-diskless-sync-delay on one node."""
        with self.lock:
            node = self.node(addr)
            self._sync_node(node, self.clock.now())  # the pings due at the old period first
            if ping_period is not None:
                if int(ping_period) < 1:
                    raise ValueError("repl-ping-replica-period must be at least 1")
                node.ping_period = int(ping_period)
            if sync_delay is not None:
                if not 0 <= float(sync_delay) <= 3600:
                    raise ValueError("repl-diskless-sync-delay must be from 0 to 3600")
                node.sync_delay = float(sync_delay)

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
            self._sync_from(node)
            return ids

    def _append(self, node: Node, key: Optional[str], value: Optional[bytes]) -> int:
        wid = self._next_write
        self._next_write += 1
        k = key if key is not None else "key:%d" % wid
        v = value if value is not None else b"value:%d" % wid
        now = self.clock.now()
        self._ping(node, now)
        node.log.append(Write(wid, node.offset + WRITE_BYTES + len(k) + len(v), k, v, now))
        node.last_io = now
        return wid

    def _ping(self, node: Node, now: float) -> None:
        """The pings a master sent its replicas up to `now`: one every ping period while it has any, none while
        it is frozen or dead. A replica's offset moves by them and its last I/O is the newest one it received."""
        if node.master is not None or node.killed or node.hung or node.ping_period <= 0:
            return
        due = int((now - node.last_ping) // node.ping_period)
        if due <= 0:
            return
        node.last_ping += due * node.ping_period
        if not self._replicas.get(node.addr):
            return
        for tick in range(max(due - MAX_PINGS_AT_ONCE, 0), due):
            at = node.last_ping - (due - 1 - tick) * node.ping_period
            node.log.append(Write(self._next_write, node.offset + PING_BYTES, "", b"", at))
            self._next_write += 1

    # ------------------------------------------------------------------ replication
    def slaveof(self, addr: str, master: Optional[str]) -> str:
        """Apply SLAVEOF to the node; returns the status text Redis answers."""
        with self.lock:
            node = self.node(addr)
            if master is None:
                if node.master is not None:
                    self._point(node, None)
                    node.link_up = False
                    node.link_down_since = None
                    # Redis keeps the data and the offset and starts a new replication history, remembering
                    # the one it continued from as replid2.
                    node.replid2 = node.replid
                    node.second_offset = node.offset + 1
                    node.replid = self._hex40()
                    node.last_ping = self.clock.now()
                    node.full_sync_since = None
                    self._sync_from(node)
                return "OK"
            if node.master == master:
                return "OK Already connected to specified master"
            self._point(node, master)
            node.link_up = False
            node.full_sync_since = None
            # As measured on Redis 7: after REPLICAOF to another address the link is down and
            # master_link_down_since_seconds restarts from 0 (-1 is only for a replica that never had a master).
            node.link_down_since = self.clock.now()
            self._sync_from(node)
            return "OK"

    def _reachable(self, node: Node, master: Optional[Node], now: float) -> tuple[bool, float]:
        """Whether the replica's link to its master is up now, and since when it is down if not."""
        if master is None or master.killed or node.link_cut or master is node:
            return False, now
        if master.hung_since is not None and now - master.hung_since >= REPL_TIMEOUT:
            return False, master.hung_since + REPL_TIMEOUT
        return True, now

    def _sync_node(self, node: Node, now: float, depth: int = 0) -> None:
        if node.killed or node.hung:
            return
        if node.master is None:
            self._ping(node, now)
            return
        master = self.nodes.get(node.master)
        if master is not None and depth < 8:
            self._sync_node(master, now, depth + 1)
        up, down_at = self._reachable(node, master, now)
        if not up:
            node.full_sync_since = None
            if node.link_up:
                node.link_up = False
                node.link_down_since = down_at
            return
        assert master is not None
        mlog = master.log
        target = mlog[: max(len(mlog) - node.lag_writes, 0)]
        full = bool(node.log) and not _is_prefix(node.log, mlog)
        if full and master.sync_delay > 0:
            # The master waits before it sends its data set; the replica keeps its own (and its history and
            # offset) until the transfer, with its link down and a sync in progress.
            if node.full_sync_since is None:
                node.full_sync_since = now
                node.link_up = False
                if node.link_down_since is None:
                    node.link_down_since = now
            if now - node.full_sync_since < master.sync_delay:
                return
        node.full_sync_since = None
        if not node.link_up:
            node.link_up = True
            node.link_since = now
            node.link_down_since = None
            node.last_io = now
        if full:
            node.log = list(target)  # full sync: the replica's own history is discarded
            node.last_io = now
        elif len(target) != len(node.log):
            node.log = list(target)
            if node.log:
                node.last_io = max(node.last_io, node.log[-1].at)
        if node.lag_writes:
            # A lagging replica is behind, not cut off: the stream keeps arriving, pings and all (without this the
            # withheld entries were the latest pings, and a slave of a live idle master looked silent for 30 s).
            node.last_io = now
        node.replid = master.replid

    def _point(self, node: Node, master: Optional[str]) -> None:
        if node.master is not None:
            self._replicas.get(node.master, {}).pop(node.addr, None)
        node.master = master
        if master is not None:
            self._replicas.setdefault(master, {})[node.addr] = None

    def _sync_from(self, node: Node) -> None:
        """Bring the node and everything that replicates from it, directly or down a chain, up to date now: a
        change to one node moves nothing else (whatever else is due is computed lazily by `refresh`)."""
        now = self.clock.now()
        seen = {node.addr}
        todo = deque([node])
        while todo:  # breadth first: masters before their replicas, each node once
            current = todo.popleft()
            self._sync_node(current, now)
            for addr in self._replicas.get(current.addr, ()):
                if addr not in seen:
                    seen.add(addr)
                    todo.append(self.nodes[addr])

    def settle(self) -> None:
        """Bring every node up to date now (what a change leaves to be computed when read), for a test that reads
        the truth straight from the nodes."""
        with self.lock:
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
        return [n for n in map(self.nodes.__getitem__, self._replicas.get(addr, ())) if not n.killed]

    # ------------------------------------------------------------------ RESP commands
    def new_session(self, node: Node, peer: str = "") -> Session:
        with self.lock:
            cid = self._next_client
            self._next_client += 1
        return Session(authenticated=not node.auth_required() and "default" not in node.users,
                       client_id=cid, peer=peer)


def _is_prefix(short: list[Write], long: list[Write]) -> bool:
    n = len(short)
    return n <= len(long) and (n == 0 or long[n - 1].write_id == short[-1].write_id)
