"""Fake Redis nodes: RESP framing, AUTH errors byte for byte, replication modelling and every node fault."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from simulator import Cluster
from simulator.model import REPL_TIMEOUT


def _raw(addr: str, payload: bytes, expect_bytes: int = 1, timeout: float = 2.0) -> bytes:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        while len(data) < expect_bytes:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def _client(addr: str, **kw: object) -> redis.Redis:
    host, port = addr.rsplit(":", 1)
    kw.setdefault("socket_timeout", 2.0)
    return redis.Redis(host=host, port=int(port), retry=None, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ RESP framing
def test_pipelined_commands_in_one_segment(codis2_cluster: Cluster) -> None:
    addr = codis2_cluster.master_of(1)
    out = _raw(addr, b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n", expect_bytes=22)
    assert out == b"+PONG\r\n$2\r\nhi\r\n+PONG\r\n"


def test_command_split_across_segments(codis2_cluster: Cluster) -> None:
    host, port = codis2_cluster.master_of(1).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as s:
        for piece in (b"*2\r\n$4\r", b"\nECHO\r\n$5\r\nhel", b"lo\r\n"):
            s.sendall(piece)
            time.sleep(0.01)  # the point is separate TCP segments, not synchronisation
        assert s.recv(100) == b"$5\r\nhello\r\n"


def test_large_bulk_reply(codis2_cluster: Cluster) -> None:
    r = _client(codis2_cluster.master_of(1))
    big = b"x" * (3 * 1024 * 1024)
    assert r.set("big", big)
    assert r.get("big") == big


def test_client_disconnect_mid_command_leaves_node_serving(codis2_cluster: Cluster) -> None:
    addr = codis2_cluster.master_of(1)
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc")
    assert _client(addr).ping()


def test_unknown_command_error_like_redis(codis2_cluster: Cluster) -> None:
    out = _raw(codis2_cluster.master_of(1), b"*2\r\n$4\r\nFROB\r\n$1\r\nx\r\n", expect_bytes=10)
    assert out == b"-ERR unknown command 'FROB', with args beginning with: 'x' \r\n"


def test_protocol_error_closes_connection(codis2_cluster: Cluster) -> None:
    out = _raw(codis2_cluster.master_of(1), b"*1\r\n+bad\r\n", expect_bytes=200)
    assert out.startswith(b"-ERR Protocol error")


def test_redis_py_unchanged_resp3(codis2_cluster: Cluster) -> None:
    r = _client(codis2_cluster.master_of(1), protocol=3)
    assert r.ping() and r.info("replication")["role"] == "master"
    assert r.config_get("replica-priority") == {"replica-priority": "100"}


def test_select_client_setname_quit(codis2_cluster: Cluster) -> None:
    r = _client(codis2_cluster.master_of(1), single_connection_client=True)
    assert r.client_setname("probe") and r.client_getname() in ("probe", b"probe")
    assert r.execute_command("SELECT", 3)
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", 99)
    out = _raw(codis2_cluster.master_of(1), b"QUIT\r\n", expect_bytes=5)
    assert out == b"+OK\r\n"


# ------------------------------------------------------------------ AUTH
def test_noauth_error_byte_for_byte() -> None:
    with Cluster.start(groups=1, slaves=0, password="s3cret") as c:
        assert _raw(c.master_of(1), b"PING\r\n", 10) == b"-NOAUTH Authentication required.\r\n"


def test_wrongpass_error_byte_for_byte() -> None:
    with Cluster.start(groups=1, slaves=0, password="s3cret") as c:
        assert _raw(c.master_of(1), b"AUTH nope\r\n", 10) == (
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")


def test_auth_without_configured_password_error_byte_for_byte(codis2_cluster: Cluster) -> None:
    assert _raw(codis2_cluster.master_of(1), b"AUTH x\r\n", 10) == (
        b"-ERR AUTH <password> called without any password configured for the default user. "
        b"Are you sure your configuration is correct?\r\n")


def test_auth_password_then_commands() -> None:
    with Cluster.start(groups=1, slaves=0, password="s3cret") as c:
        assert _raw(c.master_of(1), b"AUTH s3cret\r\nPING\r\n", 12) == b"+OK\r\n+PONG\r\n"


def test_acl_user_auth() -> None:
    with Cluster.start(groups=1, slaves=0, users={"default": "adm", "ha": "hapw"}) as c:
        assert _client(c.master_of(1), username="ha", password="hapw").ping()
        with pytest.raises(redis.AuthenticationError):
            _client(c.master_of(1), username="ha", password="wrong").ping()


def test_hello_without_auth_when_required() -> None:
    with Cluster.start(groups=1, slaves=0, password="s3cret") as c:
        assert _raw(c.master_of(1), b"HELLO 3\r\n", 10).startswith(b"-NOAUTH HELLO must be called")


# ------------------------------------------------------------------ replication
def test_slave_offset_follows_master_while_link_up(codis2_cluster: Cluster) -> None:
    codis2_cluster.write(1, 5)
    master = codis2_cluster.role(codis2_cluster.master_of(1))
    for slave in codis2_cluster.slaves_of(1):
        assert codis2_cluster.role(slave)["offset"] == master["offset"] > 0


def test_info_replication_fields_on_master_and_slave(codis2_cluster: Cluster) -> None:
    codis2_cluster.write(1, 2)
    m = _client(codis2_cluster.master_of(1), decode_responses=True).info("replication")
    assert m["role"] == "master" and m["connected_slaves"] == 2 and m["slave0"]["state"] == "online"
    s = _client(codis2_cluster.slaves_of(1)[0], decode_responses=True).info("replication")
    assert s["master_link_status"] == "up" and s["slave_repl_offset"] == m["master_repl_offset"]
    assert s["slave_priority"] == 100 and s["master_sync_in_progress"] == 0
    assert 0 <= s["master_last_io_seconds_ago"] < 10


def test_role_reply_shapes(codis2_cluster: Cluster) -> None:
    master, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    mrole = _client(master).execute_command("ROLE")
    assert mrole[0] == b"master" and len(mrole[2]) == 2
    srole = _client(slave).execute_command("ROLE")
    assert srole[0] == b"slave" and "%s:%d" % (srole[1].decode(), srole[2]) == master
    assert srole[3] == b"connected"


def test_killed_master_drops_link_and_down_since_grows(codis2_cluster: Cluster) -> None:
    master, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    codis2_cluster.kill(master)
    codis2_cluster.clock.advance(42)
    info = _client(slave, decode_responses=True).info("replication")
    assert info["master_link_status"] == "down" and info["master_link_down_since_seconds"] == 42
    assert info["master_last_io_seconds_ago"] == -1


def test_hung_master_keeps_link_up_until_repl_timeout(codis2_cluster: Cluster) -> None:
    master, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    codis2_cluster.hang(master)
    codis2_cluster.clock.advance(REPL_TIMEOUT / 2)
    info = _client(slave, decode_responses=True).info("replication")
    assert info["master_link_status"] == "up" and info["master_last_io_seconds_ago"] >= 29
    codis2_cluster.clock.advance(REPL_TIMEOUT)
    info = _client(slave, decode_responses=True).info("replication")
    assert info["master_link_status"] == "down" and info["master_link_down_since_seconds"] >= 29


def test_slaveof_no_one_keeps_data_and_offset(codis2_cluster: Cluster) -> None:
    codis2_cluster.write(1, 3)
    slave = codis2_cluster.slaves_of(1)[0]
    before = codis2_cluster.role(slave)
    assert _client(slave).execute_command("SLAVEOF", "NO", "ONE")
    after = codis2_cluster.role(slave)
    assert after["role"] == "master" and after["offset"] == before["offset"] and after["keys"] == 3


def test_repointed_slave_with_other_history_full_syncs(codis2_cluster: Cluster) -> None:
    codis2_cluster.write(1, 3)
    codis2_cluster.write(2, 1)
    slave = codis2_cluster.slaves_of(1)[0]
    master2 = codis2_cluster.master_of(2)
    host, port = master2.rsplit(":", 1)
    _client(slave).execute_command("SLAVEOF", host, port)
    assert codis2_cluster.role(slave)["offset"] == codis2_cluster.role(master2)["offset"]
    assert codis2_cluster.role(slave)["keys"] == 1


def test_revived_node_comes_back_empty_master_and_wipes_its_slaves(codis2_cluster: Cluster) -> None:
    codis2_cluster.write(1, 4)
    master, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    replid = codis2_cluster.role(master)["replid"]
    codis2_cluster.kill(master)
    assert codis2_cluster.role(slave)["keys"] == 4
    codis2_cluster.revive(master)
    revived = codis2_cluster.role(master)
    assert revived["role"] == "master" and revived["offset"] == 0 and revived["replid"] != replid
    assert codis2_cluster.role(slave)["keys"] == 0  # a full sync from an empty master, as real Redis does


def test_an_idle_master_pings_its_slaves_every_period_and_a_frozen_one_does_not(codis2_cluster: Cluster) -> None:
    master, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    codis2_cluster.set_replication(master, ping_period=10)
    start = codis2_cluster.role(master)["offset"]
    ages = []
    for _second in range(24):  # 24 s of an idle group, a second at a time
        codis2_cluster.clock.advance(1)
        ages.append(_client(slave, decode_responses=True).info("replication")["master_last_io_seconds_ago"])
    # Two pings of 14 bytes each moved both offsets; the last I/O went back to 0 or 1 at each ping.
    assert codis2_cluster.role(master)["offset"] == start + 28 == codis2_cluster.role(slave)["offset"]
    assert max(ages) <= 11 and ages.count(max(ages)) <= 3 and min(ages) <= 1, ages
    assert codis2_cluster.role(master)["keys"] == 0  # a ping is not data
    codis2_cluster.hang(master)
    codis2_cluster.clock.advance(25)
    info = _client(slave, decode_responses=True).info("replication")
    assert info["master_link_status"] == "up" and info["master_last_io_seconds_ago"] >= 25
    assert info["slave_repl_offset"] == start + 28  # no ping from a frozen master


def test_a_full_sync_waits_for_the_masters_sync_delay_and_the_slave_keeps_its_data_until_then(
        codis2_cluster: Cluster) -> None:
    codis2_cluster.write(1, 4)
    master, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    replid = codis2_cluster.role(master)["replid"]
    codis2_cluster.set_replication(master, sync_delay=5)
    codis2_cluster.kill(master)
    codis2_cluster.revive(master)  # back empty on its port, as systemd or an operator restarts it
    # As redis-server 7.0 reports it through the delay: still in the handshake, no sync in progress.
    info = _client(slave, decode_responses=True).info("replication")
    assert info["master_sync_in_progress"] == 0 and info["master_link_status"] == "down"
    assert info["master_replid"] == replid and codis2_cluster.role(slave)["keys"] == 4
    assert _client(slave).execute_command("ROLE")[3] == b"handshake"
    codis2_cluster.clock.advance(4)
    assert codis2_cluster.role(slave)["keys"] == 4
    codis2_cluster.clock.advance(1.5)
    assert codis2_cluster.role(slave)["keys"] == 0 and codis2_cluster.role(slave)["replid"] != replid


def test_lag_and_cut_link_make_stale_slaves(codis2_cluster: Cluster) -> None:
    first, second = codis2_cluster.slaves_of(1)
    codis2_cluster.set_lag(first, 2)
    codis2_cluster.cut_link(second)
    codis2_cluster.write(1, 5)
    master = codis2_cluster.role(codis2_cluster.master_of(1))
    assert codis2_cluster.role(first)["offset"] < master["offset"] and codis2_cluster.role(first)["link_up"]
    assert codis2_cluster.role(second)["offset"] == 0 and not codis2_cluster.role(second)["link_up"]


def test_priority_loading_and_syncing_are_reported(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.set_priority(slave, 0)
    codis2_cluster.set_syncing(slave)
    info = _client(slave, decode_responses=True).info()
    assert info["slave_priority"] == 0 and info["master_sync_in_progress"] == 1
    codis2_cluster.set_loading(slave)
    with pytest.raises(redis.BusyLoadingError):
        _client(slave).info()


# ------------------------------------------------------------------ node faults
def test_kill_refuses_connections(codis2_cluster: Cluster) -> None:
    master = codis2_cluster.master_of(1)
    codis2_cluster.kill(master)
    with pytest.raises(redis.ConnectionError, match="refused"):
        _client(master).ping()


def test_hang_accepts_and_never_answers_then_resumes(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.hang(slave)
    with pytest.raises(redis.TimeoutError):
        _client(slave, socket_timeout=0.2).ping()
    codis2_cluster.revive(slave)
    assert _client(slave).ping()


def test_slow_answers_late(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.slow(slave, 300)
    with pytest.raises(redis.TimeoutError):
        _client(slave, socket_timeout=0.1).ping()
    assert _client(slave, socket_timeout=2).ping()


def test_flaky_drops_every_kth_connection(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.flaky(slave, 2)
    outcomes = []
    for dummy in range(4):
        try:
            outcomes.append(bool(_client(slave).ping()))
        except redis.ConnectionError:
            outcomes.append(False)
    assert outcomes.count(False) == 2 and outcomes.count(True) == 2


@pytest.mark.parametrize("mode", ["hang", "refuse"])
def test_observer_partition_keeps_replication_links(codis2_cluster: Cluster, mode: str) -> None:
    master, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    codis2_cluster.partition(master, mode)
    with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
        _client(master, socket_timeout=0.2, socket_connect_timeout=0.2).ping()
    codis2_cluster.write(1, 2)
    info = _client(slave, decode_responses=True).info("replication")
    assert info["master_link_status"] == "up" and info["slave_repl_offset"] == codis2_cluster.role(master)["offset"]
    codis2_cluster.heal(master)
    assert _client(master).ping()


def test_thousand_nodes_in_one_process() -> None:
    with Cluster.start(groups=250, slaves=3) as c:
        assert len(c.nodes) == 1000
        for addr in list(c.nodes)[::50]:
            assert _client(addr).ping()


def test_shutdown_leaves_no_thread_or_socket() -> None:
    before = set(threading.enumerate())
    with Cluster.start(groups=2, slaves=1) as c:
        addrs = list(c.nodes)
        url = c.dashboard_url
        _client(addrs[0]).ping()
    assert set(threading.enumerate()) - before == set()
    host, port = url.rsplit(":", 1)
    for target in addrs + [url.split("//")[1]]:
        h, p = target.rsplit(":", 1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((h, int(p)), timeout=1).close()
