"""Fuzzing the pass with hostile input: generated dashboard replies (valid shapes with hostile values, then mutated
bytes), generated Redis replies, and generated module arguments (floats include nan and inf).

Every example runs the real module (main(), in-process) against a scripted dashboard on loopback and scripted
Redis servers. The properties:
- never a traceback, never the "bug in codis.ha" message;
- never a mutating dashboard call for a group unless, judged by this file's own oracle, the topology around it is
  well formed (one master, known types, valid addresses, no server listed twice anywhere) and the pass decided to
  act on that group;
- the pass ends within its deadline.

CI runs a couple of hundred examples per test; FUZZ_EXAMPLES=5000 runs longer.
"""
from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import socket
import threading
import time
from typing import Any, Iterator, Optional

import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings, strategies as st

from ansible_collections.codis.ha.plugins.module_utils._topology import parse_addr

from simulator.ports import free_port
from tests.helpers import run_module
from tests.stubs import ScriptedRedis, StubHTTP, bulk, http_answer, redis_reply

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=list(HealthCheck))
PASS_TIMEOUT = 3.0
ARGS = dict(codis_version="2", probe_timeout=0.2, probe_attempts=1, probe_interval=0.0, verify_timeout=0.2,
            dashboard_timeout=0.3, pass_timeout=PASS_TIMEOUT)
INTERNAL = "a bug in codis.ha"


def _info(fields: dict[str, Any]) -> bytes:
    return bulk(b"# Replication\r\n" + b"".join(b"%s:%s\r\n" % (k.encode(), str(v).encode())
                                                for k, v in fields.items()))


class World:
    """The scripted Redis side, the same for every example: a live master, its live slave, a slave whose master
    is dead, a server that answers garbage, and two dead ports."""

    def __init__(self) -> None:
        self.dead = [free_port() for _index in range(6)]
        self.servers: list[ScriptedRedis] = []

    def start(self) -> "World":
        master = self._serve(_info({"role": "master", "master_repl_offset": 500, "connected_slaves": 1}),
                             b"*3\r\n$6\r\nmaster\r\n:500\r\n*0\r\n")
        self._serve(_info({"role": "slave", "master_host": "127.0.0.1", "master_port": master.port,
                           "master_link_status": "up", "master_last_io_seconds_ago": 1, "slave_repl_offset": 500,
                           "slave_priority": 100}),
                    b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:%d\r\n$9\r\nconnected\r\n:500\r\n" % master.port)
        self._serve(_info({"role": "slave", "master_host": "127.0.0.1", "master_port": self.dead[0],
                           "master_link_status": "down", "master_link_down_since_seconds": 1,
                           "slave_repl_offset": 400, "slave_priority": 100}),
                    b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:%d\r\n$10\r\nconnecting\r\n:400\r\n" % self.dead[0])
        self._serve(b":42\r\n", b"*1\r\n:1\r\n")
        return self

    def _serve(self, info: bytes, role: bytes) -> ScriptedRedis:
        server = ScriptedRedis(redis_reply(info, role)).__enter__()
        self.servers.append(server)
        return server

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers] + self.dead

    def close(self) -> None:
        for server in self.servers:
            server.__exit__(None, None, None)


class Dashboard:
    """A Codis 2 dashboard whose groups reply is whatever the example says; every mutation answers 500."""

    def __init__(self) -> None:
        self.body = b"[]"
        self.behaviour = "answer"
        self.stub = StubHTTP(self._respond)

    def _respond(self, method: str, path: str, body: bytes, sock: socket.socket, stopping: threading.Event) -> None:
        if path == "/api/topom/model":
            sock.sendall(http_answer(404, b"404 page not found"))
        elif method != "GET":
            sock.sendall(http_answer(500, b"zk: the fuzz dashboard refuses every change"))
        elif self.behaviour == "truncated":
            answer = http_answer(200, self.body)
            sock.sendall(answer[:len(answer) // 2])
        elif self.behaviour == "trickle":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(self.body) + 10))
            while not stopping.wait(0.05):
                sock.sendall(b" ")
        elif path == "/api/server_groups":
            sock.sendall(http_answer(200, self.body))
        else:
            sock.sendall(http_answer(200, self._one_group(path)))

    def _one_group(self, path: str) -> bytes:
        try:
            gid = int(path.rsplit("/", 1)[1])
            groups = json.loads(self.body)
            return json.dumps(next(g for g in groups if isinstance(g, dict) and g.get("id") == gid)).encode()
        except (ValueError, TypeError, StopIteration, RecursionError, AttributeError):
            return b"group is not found"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World().start()
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def dashboard() -> Iterator[Dashboard]:
    d = Dashboard()
    with d.stub:
        yield d


# ------------------------------------------------------------------ the oracle: this file's own reading
SPELLINGS = ["127.0.0.1:%d", "localhost:%d", "LOCALHOST:%d", "[::ffff:127.0.0.1]:%d", " 127.0.0.1:%d ",
             "127.0.0.1:0%d"]
BAD_SPELLINGS = ["127.0.0.1:%d0000", "127.0.0.1", "[::1:%d", "127.0.0.1:-%d", ":%d", "127.0.0.1:%d:1"]


def _port_of(addr: Any) -> Optional[int]:
    """The loopback port a valid spelling names, or None: identity is the port, since every server is local."""
    if not isinstance(addr, str):
        return None
    m = re.fullmatch(r"\s*(127\.0\.0\.1|localhost|LOCALHOST|\[::ffff:127\.0\.0\.1\]):(0*\d{1,5})\s*", addr)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        return None
    return int(m.group(2))


def well_formed(groups: Any) -> set[int]:
    """The ids of the groups the pass may act on: the whole reply parses, and the group is sound on its own and
    shares no server with another group."""
    if not isinstance(groups, list):
        return set()
    ids = [g.get("id") for g in groups if isinstance(g, dict)]
    if len(ids) != len(groups) or any(not isinstance(i, int) or isinstance(i, bool) for i in ids):
        return set()
    if len(set(ids)) != len(ids):
        return set()
    seen: dict[int, list[int]] = {}
    for g in groups:
        for s in g.get("servers") or []:
            if isinstance(s, dict):
                port = _port_of(s.get("addr"))
                if port is not None:
                    seen.setdefault(port, []).append(g["id"])
    ok = set()
    for g in groups:
        servers = g.get("servers")
        if not isinstance(servers, list) or not servers:
            continue
        if not all(isinstance(s, dict) and isinstance(s.get("type"), str) and _port_of(s.get("addr")) is not None
                   for s in servers):
            continue
        if any(s["type"] not in ("master", "slave", "offline") for s in servers):
            continue
        if [s["type"] for s in servers].count("master") != 1:
            continue
        if any(len(seen[_port_of(s["addr"])]) > 1 for s in servers):  # type: ignore[index]
            continue
        ok.add(g["id"])
    return ok


def only_loopback(value: Any) -> bool:
    """Whether every address in a (mutated) reply that the pass could contact is on loopback: a flipped digit
    must not send a probe to 107.0.0.1, nor a flipped letter a DNS query for 'localhoxt'."""
    if isinstance(value, dict):
        return all(only_loopback(v) for v in value.values())
    if isinstance(value, list):
        return all(only_loopback(v) for v in value)
    if not isinstance(value, str):
        return True
    try:
        host, _port = parse_addr(value)
    except ValueError:
        return True  # not an address: nothing is contacted
    if host in ("127.0.0.1", "::1"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(result: dict[str, Any], elapsed: float, dashboard: Dashboard, allowed: set[int]) -> None:
    assert "exception" not in result and INTERNAL not in str(result.get("msg")), result.get("msg")
    assert isinstance(result.get("msg"), str) and result["msg"]
    assert elapsed <= PASS_TIMEOUT + 1.5, "the pass took %.2f s, its deadline is %s s" % (elapsed, PASS_TIMEOUT)
    acting = {a["group"] for a in result.get("actions", [])}
    event("well-formed groups: %s" % ("some" if allowed else "none"))
    event("dashboard changes attempted: %s" % ("yes" if dashboard.stub.mutations else "no"))
    for method, path, _body in dashboard.stub.mutations:
        m = re.match(r"/api/server_group/(\d+)/", path)
        assert m, "a mutation on an unexpected route: %s %s" % (method, path)
        gid = int(m.group(1))
        assert gid in allowed, "%s %s on a group that is not well formed" % (method, path)
        assert gid in acting, "%s %s without a decision to act on group %d" % (method, path, gid)


def run(dashboard: Dashboard, body: bytes, behaviour: str = "answer", **extra: Any) -> tuple[dict[str, Any], float]:
    dashboard.body = body
    dashboard.behaviour = behaviour
    dashboard.stub.requests.clear()
    started = time.monotonic()
    result = run_module(dict(ARGS, dashboard_url=dashboard.stub.url, **extra))
    return result, time.monotonic() - started


# ------------------------------------------------------------------ strategies
def addresses(world: World) -> st.SearchStrategy[Any]:
    ports = st.sampled_from(world.ports)
    good = st.builds(lambda spelling, port: spelling % port, st.sampled_from(SPELLINGS), ports)
    bad = st.builds(lambda spelling, port: spelling % port if "%d" in spelling else spelling,
                    st.sampled_from(BAD_SPELLINGS), ports)
    other = st.one_of(st.integers(), st.none(), st.text(alphabet="abc-. ", max_size=8),
                      st.lists(st.integers(), max_size=2))
    return st.one_of(good, good, good, bad, other)


TYPES = st.one_of(st.sampled_from(["master", "slave", "slave", "offline"]),
                  st.sampled_from(["", "MASTER", "weird", "master "]), st.integers(), st.none())


def servers(world: World) -> st.SearchStrategy[Any]:
    server = st.fixed_dictionaries({"addr": addresses(world), "type": TYPES},
                                   optional={"group_id": st.integers(-3, 3)})
    return st.one_of(st.lists(server, min_size=1, max_size=4), st.lists(server, min_size=1, max_size=4), st.none(),
                     st.just([]), st.just({}), st.text(max_size=3))


def sound_servers(world: World) -> st.SearchStrategy[list[dict[str, Any]]]:
    """One master and up to three other servers, distinct ports, good spellings: a group the pass may act on
    unless another group lists one of its servers too. Often shaped for a failover: the dead master that one
    live slave still follows."""
    anything = st.lists(st.sampled_from(world.ports), min_size=1, max_size=4, unique=True)
    failover = st.lists(st.sampled_from([p for p in world.ports if p not in (world.dead[0], world.servers[2].port)]),
                        max_size=2, unique=True).map(lambda more: [world.dead[0], world.servers[2].port] + more)
    return st.one_of(anything, failover).flatmap(
        lambda ports: st.tuples(*[st.sampled_from(SPELLINGS) for _p in ports],
                                *[st.sampled_from(["slave", "slave", "offline"]) for _p in ports[1:]]).map(
            lambda drawn: [{"addr": drawn[i] % port, "type": "master" if i == 0 else drawn[len(ports) + i - 1],
                            "group_id": 0} for i, port in enumerate(ports)]))


def groups(world: World) -> st.SearchStrategy[Any]:
    hostile_id = st.one_of(st.integers(-2, 2 ** 40), st.booleans(), st.text(max_size=2))
    sound = st.builds(lambda servers: {"id": 0, "servers": servers}, sound_servers(world))
    hostile = st.fixed_dictionaries({"id": st.one_of(st.integers(0, 4), hostile_id), "servers": servers(world)},
                                    optional={"product_name": st.text(max_size=5)})

    def numbered(items: list[dict[str, Any]], ids: list[int]) -> list[dict[str, Any]]:
        return [dict(g, id=i) if g["id"] == 0 and "product_name" not in g else g for g, i in zip(items, ids)]

    topologies = st.lists(st.one_of(sound, sound, hostile), max_size=3).flatmap(
        lambda items: st.lists(st.integers(1, 5), min_size=len(items), max_size=len(items), unique=True).map(
            lambda ids: numbered(items, ids)))
    return st.one_of(topologies, topologies, topologies, st.dictionaries(st.text(max_size=2), st.integers()))


@pytest.fixture(scope="module")
def strategies(world: World) -> dict[str, Any]:
    return {"groups": groups(world)}


# ------------------------------------------------------------------ the properties
@FUZZ
@given(data=st.data(), behaviour=st.sampled_from(["answer"] * 10 + ["truncated", "trickle"]))
def test_generated_dashboard_replies_never_lead_to_an_unsafe_act(
        world: World, dashboard: Dashboard, strategies: dict[str, Any], data: st.DataObject, behaviour: str) -> None:
    topology = data.draw(strategies["groups"], label="groups")
    note("dashboard reply: %s" % json.dumps(topology))
    assert only_loopback(topology)
    result, elapsed = run(dashboard, json.dumps(topology).encode(), behaviour)
    check(result, elapsed, dashboard, well_formed(topology) if behaviour == "answer" else set())


@FUZZ
@given(data=st.data())
def test_mutated_dashboard_json_never_leads_to_an_unsafe_act(
        world: World, dashboard: Dashboard, strategies: dict[str, Any], data: st.DataObject) -> None:
    body = bytearray(json.dumps(data.draw(strategies["groups"], label="groups")).encode())
    for _step in range(data.draw(st.integers(1, 4), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "digit", "digit", "type"]))
        at = data.draw(st.integers(0, max(len(body) - 1, 0)))
        digits = [i for i, c in enumerate(body) if chr(c).isdigit()]
        if kind == "digit" and digits:  # keeps the JSON valid: another port, another id
            body[digits[at % len(digits)]] = ord(data.draw(st.sampled_from("0123456789")))
        elif kind == "type":
            body[:] = body.replace(*data.draw(st.sampled_from([(b'"slave"', b'"master"'), (b'"master"', b'"slave"'),
                                                               (b'"offline"', b'"master"')])), 1)
        elif kind == "delete" and body:
            del body[at]
        elif kind == "insert":
            body[at:at] = data.draw(st.sampled_from([b"[", b"{", b"]", b",", b'"', b"NaN", b"1e999", b"\xff", b"-",
                                                     b"0", b"null"]))
        elif body:
            body[at] = data.draw(st.integers(0, 255))
    note("mutated body: %r" % bytes(body))
    try:
        parsed = json.loads(bytes(body), parse_constant=lambda name: float(name.replace("-", "")))
        assume(only_loopback(parsed))
        allowed = set() if "NaN" in body.decode("latin-1") or "Infinity" in body.decode("latin-1") \
            else well_formed(parsed)
    except (ValueError, RecursionError):
        allowed = set()
    result, elapsed = run(dashboard, bytes(body))
    check(result, elapsed, dashboard, allowed)


# Redis replies: RESP values of every kind, and INFO texts with hostile values.
RESP = st.recursive(
    st.one_of(st.integers(-2 ** 70, 2 ** 70).map(lambda n: b":%d\r\n" % n),
              st.binary(max_size=20).map(bulk),
              st.sampled_from([b"+OK\r\n", b"-ERR nope\r\n", b"-LOADING busy\r\n", b"-NOAUTH x\r\n", b"$-1\r\n",
                               b"*-1\r\n", b"_\r\n", b"#t\r\n", b",nan\r\n"])),
    lambda inner: st.lists(inner, max_size=3).map(lambda items: b"*%d\r\n" % len(items) + b"".join(items)),
    max_leaves=6)
INFO_VALUES = st.one_of(st.integers(-5, 2 ** 64).map(str),
                        st.sampled_from(["up", "down", "master", "slave", "nan", "1e9", "", "-1", "x:y"]))
INFO_KEYS = st.sampled_from(["role", "master_host", "master_port", "master_link_status", "slave_repl_offset",
                             "master_repl_offset", "slave_priority", "master_last_io_seconds_ago", "loading",
                             "master_link_down_since_seconds", "master_sync_in_progress", "slave0", "db0"])
INFO_TEXT = st.dictionaries(INFO_KEYS, INFO_VALUES, max_size=8).map(_info)


@FUZZ
@given(info=st.one_of(INFO_TEXT, RESP), role=RESP)
def test_generated_redis_replies_stay_with_their_server(world: World, dashboard: Dashboard, info: bytes,
                                                        role: bytes) -> None:
    with ScriptedRedis(redis_reply(info, role)) as odd:
        dead_master, linked_slave = world.dead[0], world.servers[2].port
        topology = [
            {"id": 1, "servers": [{"addr": "127.0.0.1:%d" % world.dead[1], "type": "master"},
                                  {"addr": odd.addr, "type": "slave"}]},
            {"id": 2, "servers": [{"addr": "127.0.0.1:%d" % dead_master, "type": "master"},
                                  {"addr": "127.0.0.1:%d" % linked_slave, "type": "slave"}]},
        ]
        result, elapsed = run(dashboard, json.dumps(topology).encode())
    check(result, elapsed, dashboard, {1, 2})
    # The other group is planned as usual: its master is dead and its slave takes over (the dashboard refuses).
    assert [a["server"] for a in result["actions"] if a["group"] == 2 and a["action"] == "promote"] == [
        "127.0.0.1:%d" % linked_slave], result["msg"]
    odd_server = [s for g in result["groups"] if g["id"] == 1 for s in g["servers"] if s["addr"] == odd.addr]
    if odd_server and odd_server[0]["status"] == "error":
        assert any(s["group"] == 1 and odd.addr in s["reason"] for s in result["skipped_groups"])


FLOAT_OPTIONS = ["probe_timeout", "probe_interval", "dashboard_timeout", "verify_timeout", "down_after",
                 "min_failover_interval", "stale_margin", "pass_timeout"]
INT_OPTIONS = ["probe_attempts", "probe_concurrency", "max_data_loss_bytes", "max_failovers_per_pass"]
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 5),
                   st.sampled_from(["nan", "inf", "-inf", "1e400", "NaN", "0", "-0.0", "1"]))
INTS = st.one_of(st.integers(-2 ** 70, 2 ** 70), st.integers(0, 5))


def _non_finite(value: Any) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


@FUZZ
@given(floats=st.dictionaries(st.sampled_from(FLOAT_OPTIONS), FLOATS, max_size=4),
       ints=st.dictionaries(st.sampled_from(INT_OPTIONS), INTS, max_size=2),
       groups=st.one_of(st.none(), st.lists(st.integers(-2 ** 40, 2 ** 40), max_size=3)))
def test_generated_arguments_are_refused_or_used_never_a_crash(world: World, dashboard: Dashboard,
                                                               floats: dict[str, Any], ints: dict[str, int],
                                                               groups: Optional[list[int]]) -> None:
    live_master, live_slave = world.servers[0].port, world.servers[1].port
    topology = [{"id": 1, "servers": [{"addr": "127.0.0.1:%d" % live_master, "type": "master"},
                                      {"addr": "127.0.0.1:%d" % live_slave, "type": "slave"}]}]
    args = dict(ARGS, **floats, **ints)
    if "state_path" not in args and args.get("down_after") not in (None, 0, "0", "-0.0"):
        args.pop("down_after")
    if groups is not None:
        args["groups"] = groups
    dashboard.body = json.dumps(topology).encode()
    dashboard.behaviour = "answer"
    dashboard.stub.requests.clear()
    started = time.monotonic()
    result = run_module(dict(args, dashboard_url=dashboard.stub.url))
    elapsed = time.monotonic() - started
    assert "exception" not in result and INTERNAL not in str(result.get("msg")), result.get("msg")
    bad = [name for name, value in floats.items() if _non_finite(value) and name in args]
    if bad:
        assert result.get("failed") and "invalid arguments" in result["msg"], (bad, result["msg"])
        assert any(name in result["msg"] for name in bad)
    if result.get("failed") and "invalid arguments" in result["msg"]:
        # Refused before anything was sent. Asked of a socket that only listens: a connection the pass made is in
        # its accept queue once connect() returned. (The shared stub may record an earlier example's request late
        # on a loaded machine: a full local run found one there.)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            listener.setblocking(False)
            again = run_module(dict(args, dashboard_url="http://127.0.0.1:%d" % listener.getsockname()[1]))
            assert again.get("failed") and "invalid arguments" in again["msg"], again["msg"]
            with pytest.raises(BlockingIOError):
                listener.accept()
    assert dashboard.stub.mutations == []  # a healthy group is never touched
    budget = min(float(args.get("pass_timeout", 60)), 60.0)
    assert elapsed <= budget + 1.5 or result.get("failed")


@FUZZ
@given(data=st.data())
def test_hostile_ip_spellings_are_one_server(world: World, dashboard: Dashboard, data: st.DataObject) -> None:
    """Two spellings of one server in one group (or across groups) always refuse the groups concerned."""
    port = world.servers[0].port
    first, second = data.draw(st.lists(st.sampled_from(SPELLINGS), min_size=2, max_size=2, unique=True))
    same_group = data.draw(st.booleans())
    a = {"addr": first % port, "type": "master"}
    b = {"addr": second % port, "type": "slave"}
    dead_master = {"addr": "127.0.0.1:%d" % world.dead[0], "type": "master"}
    topology = ([{"id": 1, "servers": [a, b]}] if same_group else
                [{"id": 1, "servers": [a]}, {"id": 2, "servers": [b, dead_master]}])
    result, elapsed = run(dashboard, json.dumps(topology).encode())
    check(result, elapsed, dashboard, set())
    assert {s["group"] for s in result["skipped_groups"]} == ({1} if same_group else {1, 2})
