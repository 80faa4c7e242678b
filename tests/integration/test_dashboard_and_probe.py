"""The dashboard client and the probe, each alone, against the simulator over real HTTP and RESP."""
from __future__ import annotations

import time
from typing import Callable

import pytest

from ansible_collections.codis.ha.plugins.module_utils._dashboard import (
    Codis2Client,
    DashboardBadReply,
    DashboardRejected,
    DashboardUnavailable,
    LockConflict,
    parse_group,
)
from ansible_collections.codis.ha.plugins.module_utils._probe import KeptConnections, ProbeSettings, Prober, parse_info
from ansible_collections.codis.ha.plugins.module_utils._topology import canonical_addr
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    ALIVE,
    AUTH_ERROR,
    DOWN,
    ERROR,
    ProbeResult,
    Server,
    normalize_addr,
)
from simulator import Cluster
from tests.stubs import MASTER_INFO, MASTER_ROLE, ScriptedRedis, redis_reply


def client(c: Cluster, **kw) -> Codis2Client:
    return Codis2Client(c.dashboard_url, timeout=kw.pop("timeout", 2.0), sleep=lambda s: None, **kw)


# ------------------------------------------------------------------ dashboard client
def test_topology_reads_groups_and_types(codis2_cluster: Cluster) -> None:
    topo = client(codis2_cluster).topology()
    assert [g.id for g in topo.groups] == [1, 2, 3]
    assert topo.group(1).snapshot() == codis2_cluster.servers(1)


def test_empty_cluster_is_an_empty_topology() -> None:
    with Cluster.start(groups=0) as c:
        assert client(c).topology().groups == ()


def test_promote_always_sends_the_group_in_the_body(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(2)[0]
    client(codis2_cluster).promote(2, Server(slave, "slave"))
    assert codis2_cluster.master_of(2) == slave
    assert '"group_id": 2' in codis2_cluster.audit[-1]["body"]


def test_rejection_carries_the_go_error_text(codis2_cluster: Cluster) -> None:
    with pytest.raises(DashboardRejected) as info:
        client(codis2_cluster).promote(1, Server("127.0.0.1:1", "slave"))
    assert info.value.text == "no such addr" and "HTTP 500" in str(info.value)


def test_lock_conflict_retried_with_backoff_then_given_up(codis2_cluster: Cluster) -> None:
    waits: list[float] = []
    c = Codis2Client(codis2_cluster.dashboard_url, lock_retries=2, lock_backoff=0.1, sleep=waits.append)
    codis2_cluster.dashboard_fault("lock_conflict", 3)
    with pytest.raises(LockConflict):
        c.add_server(1, codis2_cluster.slaves_of(1)[0], "slave")
    assert waits == [0.1, 0.2] and len(codis2_cluster.audit) == 3


def test_other_errors_are_not_retried(codis2_cluster: Cluster) -> None:
    with pytest.raises(DashboardRejected):
        client(codis2_cluster).add_server(1, codis2_cluster.slaves_of(2)[0], "master")
    assert len(codis2_cluster.audit) == 1


def test_refuses_to_send_an_empty_address(codis2_cluster: Cluster) -> None:
    with pytest.raises(ValueError):
        client(codis2_cluster).add_server(1, "", "slave")
    assert codis2_cluster.audit == []


def test_unavailable_garbage_and_timeout(codis2_cluster: Cluster) -> None:
    codis2_cluster.dashboard_fault("garbage")
    with pytest.raises(DashboardBadReply, match="not JSON"):
        client(codis2_cluster).topology()
    codis2_cluster.clear_dashboard_faults()
    codis2_cluster.dashboard_fault("slow", 500)
    with pytest.raises(DashboardUnavailable, match="no complete answer within 0.1 s"):
        client(codis2_cluster, timeout=0.1).topology()
    codis2_cluster.clear_dashboard_faults()
    codis2_cluster.dashboard_fault("down")
    with pytest.raises(DashboardUnavailable):
        client(codis2_cluster).topology()


@pytest.mark.parametrize("item,needle", [
    ("x", "without an integer id"),
    ({"id": "1"}, "without an integer id"),
    ({"id": True}, "without an integer id"),
])
def test_a_group_without_an_id_is_a_bad_reply(item: object, needle: str) -> None:
    with pytest.raises(DashboardBadReply, match=needle):
        parse_group(item, "test")


@pytest.mark.parametrize("servers,needle", [
    ({}, "not a list"),
    ([{"addr": "a:1"}], "malformed server"),
    ([{"addr": "nohost", "type": "slave"}], "not host:port"),
    ([{"addr": "a:0", "type": "slave"}], "1 to 65535"),
    ([{"addr": "a:65536", "type": "slave"}], "1 to 65535"),
    ([{"addr": "::1:6379", "type": "slave"}], "IPv6"),
    ([{"addr": "[::1:6379", "type": "slave"}], "IPv6"),
    ([{"addr": ":6379", "type": "slave"}], "not a host name"),
    ([{"addr": "a:1", "type": "slave"}, {"addr": "a:1", "type": "master"}], "twice"),
])
def test_a_malformed_group_is_marked_invalid_with_the_culprit(servers: object, needle: str) -> None:
    group = parse_group({"id": 4, "servers": servers}, "test")
    assert group.invalid is not None and needle in group.invalid


@pytest.mark.parametrize("spelling,canonical", [
    ("localhost:6379", "127.0.0.1:6379"),
    ("LOCALHOST:06379", "127.0.0.1:6379"),
    ("[::FFFF:127.0.0.1]:6379", "127.0.0.1:6379"),
    ("[0:0::1]:7000", "[::1]:7000"),
    (" 10.0.0.1:1 ", "10.0.0.1:1"),
    ("Redis-A.example.:6379", "redis-a.example:6379"),
])
def test_addresses_are_compared_in_one_spelling(spelling: str, canonical: str) -> None:
    assert canonical_addr(spelling) == canonical


def test_unknown_type_is_kept_for_the_planner_to_refuse() -> None:
    g = parse_group({"id": 1, "servers": [{"addr": "a:1", "type": "weird", "group_id": 1}]}, "test")
    assert g.servers == (Server("a:1", "weird"),)


# ------------------------------------------------------------------ probe
def settings(**kw) -> ProbeSettings:
    return ProbeSettings(**{**dict(timeout=0.3, attempts=2, interval=0.05), **kw})


def test_probe_reads_master_and_slave(codis2_cluster: Cluster) -> None:
    codis2_cluster.write(1, 3)
    m, s = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    result = Prober(settings()).probe_all([m, s])
    assert result[m].role == "master" and result[m].keys == 3
    assert result[s].replicates_from(m) and result[s].link_up and result[s].offset == result[m].offset
    assert result[s].priority == 100


def test_dead_server_costs_attempts_not_redis_py_retries(codis2_cluster: Cluster) -> None:
    m = codis2_cluster.master_of(1)
    codis2_cluster.kill(m)
    waits: list[float] = []
    start = time.monotonic()
    result = Prober(settings(attempts=3), sleep=waits.append).probe(m)
    # Refused at once: the pause is what is left of probe_interval after the attempt.
    assert result.status == DOWN and result.attempts == 3 and len(waits) == 2 and all(0 < w <= 0.05 for w in waits)
    assert time.monotonic() - start < 1.0


def test_an_attempt_that_timed_out_is_followed_at_once(codis2_cluster: Cluster) -> None:
    m = codis2_cluster.master_of(1)
    codis2_cluster.hang(m)
    waits: list[float] = []
    result = Prober(settings(timeout=0.1, attempts=2, interval=0.05), sleep=waits.append).probe(m)
    assert result.status == DOWN and result.attempts == 2 and waits == []


def test_flaky_server_recovers_on_second_attempt(codis2_cluster: Cluster) -> None:
    m = codis2_cluster.master_of(1)
    codis2_cluster.flaky(m, 1)  # every connection dropped
    assert Prober(settings()).probe(m).status == DOWN
    codis2_cluster.flaky(m, 2)
    result = Prober(settings(attempts=2)).probe(m)
    assert result.status == ALIVE


def test_auth_error_is_not_down_and_not_retried() -> None:
    with Cluster.start(groups=1, slaves=0, password="pw") as c:
        m = c.master_of(1)
        for pw in (None, "wrong"):
            result = Prober(settings(password=pw, attempts=3)).probe(m)
            assert result.status == AUTH_ERROR and result.attempts == 1
        assert Prober(settings(password="pw")).probe(m).status == ALIVE


def test_hung_servers_probed_in_parallel(codis2_cluster: Cluster) -> None:
    hung = [codis2_cluster.master_of(g) for g in (1, 2, 3)]
    for addr in hung:
        codis2_cluster.hang(addr)
    s = settings(timeout=0.3, attempts=2, interval=0.05)
    start = time.monotonic()
    result = Prober(s).probe_all(list(codis2_cluster.nodes))
    elapsed = time.monotonic() - start
    assert all(result[a].status == DOWN for a in hung)
    assert elapsed < 2 * s.budget


def test_a_second_look_asks_only_what_answered_and_times_the_slaves_stillness_from_the_first(
        codis2_cluster: Cluster) -> None:
    groups = client(codis2_cluster).topology().groups
    frozen = codis2_cluster.master_of(1)
    codis2_cluster.hang(frozen)  # its slaves' links stay up: they are looked at again, against the first look
    prober = Prober(settings(timeout=0.3, attempts=2, interval=0.05))
    first = prober.probe_all(list(codis2_cluster.nodes))
    witnesses = set(codis2_cluster.slaves_of(1))
    assert Prober.witnesses(groups, first) == witnesses
    connections = {addr: node.connections for addr, node in codis2_cluster.nodes.items()}
    again = prober.look_again(groups, first)
    asked = {addr for addr, node in codis2_cluster.nodes.items() if node.connections > connections[addr]}
    # The frozen master is not asked again; its slaves once (the look again), every other server once.
    assert asked == set(codis2_cluster.nodes) - {frozen}
    assert again[frozen] == first[frozen]
    for addr in witnesses:
        assert again[addr].answered_at == first[addr].answered_at
        assert again[addr].still_for is not None and again[addr].still_for >= 0.0
    for addr in set(codis2_cluster.nodes) - witnesses - {frozen}:
        assert again[addr].answered_at > first[addr].answered_at


def test_loading_server_is_alive_and_loading(codis2_cluster: Cluster) -> None:
    s = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.set_loading(s)
    result = Prober(settings()).probe(s)
    assert result.status == ALIVE and result.loading


def test_parse_info_old_redis_without_role_field_uses_role_reply() -> None:
    r = parse_info("a:1", {"master_repl_offset": "5"}, ["master", 5, []], 1)
    assert r.role == "master" and r.offset == 5


def test_settings_problems() -> None:
    assert settings(timeout=0, attempts=0, interval=-1, concurrency=0).problems() == [
        "probe_timeout must be greater than 0 and at most 300, got 0",
        "probe_attempts must be at least 1 and at most 100, got 0",
        "probe_interval must be at least 0 and at most 60, got -1",
        "probe_concurrency must be at least 1 and at most 4096, got 0"]
    assert settings(timeout=float("nan"), interval=float("inf")).problems() == [
        "probe_timeout must be a finite number, got nan", "probe_interval must be a finite number, got inf"]


def test_normalize_addr() -> None:
    assert normalize_addr("LOCALHOST:6379") == "127.0.0.1:6379"
    assert normalize_addr("[::1]:6379") == "[::1]:6379"


# ------------------------------------------------------------------ the batch on kept connections, odd replies
def _config_refused(command: list[bytes]) -> bytes:
    name = command[0].upper() if command else b""
    if name == b"CONFIG":
        return b"-ERR unknown command 'CONFIG'\r\n"  # renamed away, as some operators do
    return redis_reply(MASTER_INFO, MASTER_ROLE)(command)


def _role_in_resp3_after_the_first() -> Callable[[list[bytes]], bytes]:
    asked = []

    def reply(command: list[bytes]) -> bytes:
        if command and command[0].upper() == b"ROLE":
            asked.append(command)
            if len(asked) > 1:
                return b"%1\r\n+role\r\n+master\r\n"  # a type of RESP3, which the batch does not read
        return redis_reply(MASTER_INFO, MASTER_ROLE)(command)
    return reply


def _two_passes_on_kept_connections(odd: ScriptedRedis) -> tuple[Prober, ProbeResult, ProbeResult]:
    """The threads' first look (its connection kept), then the batch's."""
    connections = KeptConnections(limit=10)
    try:
        prober = Prober(settings(), kept=connections)
        first = prober.probe_all([odd.addr])[odd.addr]
        return prober, first, prober.probe_all([odd.addr])[odd.addr]
    finally:
        connections.close()


def test_an_error_reply_in_the_batch_is_read_by_the_threads_on_the_same_connection() -> None:
    with ScriptedRedis(_config_refused) as odd:
        prober, first, second = _two_passes_on_kept_connections(odd)
    assert first.status == second.status == ALIVE and second.role == "master" and second.ping_period is None
    assert prober.batched == 0 and odd.connections == 1  # the batch left it to the threads, on the kept connection


def test_a_reply_the_batch_cannot_read_is_asked_again_on_a_new_connection() -> None:
    with ScriptedRedis(_role_in_resp3_after_the_first()) as odd:
        prober, first, second = _two_passes_on_kept_connections(odd)
    assert first.status == ALIVE and second.status == ERROR and "Protocol Error" in second.error, second
    assert prober.batched == 0 and odd.connections == 2  # dropped by the batch, asked by a thread on a new one
