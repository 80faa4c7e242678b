"""The simulated Codis 3.x dashboard over real HTTP: xauth, 800 errors, promote steps, sync actions, SLOTSINFO."""
from __future__ import annotations

import threading
import socket
import hashlib
import json
import subprocess
import time
import sys
from typing import Any, Iterator

import pytest
import requests

from simulator import Cluster
from simulator.dashboard3 import xauth
from tests.conftest import ROOT
from tests.helpers import wait_for

X = xauth("codis-demo")


@pytest.fixture
def c3() -> Iterator[Cluster]:
    with Cluster.start(groups=2, slaves=2, codis=3, stats_interval=0.05) as c:
        yield c


def _put(c: Cluster, path: str) -> requests.Response:
    return requests.put(c.dashboard_url + path, timeout=10)


def _stats(c: Cluster) -> dict[str, Any]:
    r = requests.get(c.dashboard_url + "/api/topom/stats/" + X, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    return dict(r.json())


def _error(r: requests.Response) -> str:
    assert r.status_code == 800, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"Cause", "Stack"}
    return str(body["Cause"])


def test_xauth_is_derived_from_the_product_name_and_checked(c3: Cluster) -> None:
    assert X == hashlib.sha256(b"Codis-XAuth-[codis-demo]").hexdigest()[:32]
    assert xauth("codis-demo") != xauth("codis-other")
    missing = requests.get(c3.dashboard_url + "/api/topom/stats/", timeout=5)
    assert missing.status_code == 404  # an empty path segment matches no route
    wrong = requests.get(c3.dashboard_url + "/api/topom/stats/" + xauth("other"), timeout=5)
    assert "invalid xauth" in _error(wrong)
    model = requests.get(c3.dashboard_url + "/api/topom/model", timeout=5).json()
    assert model["product_name"] == "codis-demo"


def test_stats_list_servers0_as_master_and_the_dashboards_own_polls(c3: Cluster) -> None:
    stats = _stats(c3)
    [g1, g2] = stats["group"]["models"]
    assert g1["servers"][0]["server"] == c3.master_of(1) and g1["promoting"] == {}
    assert stats["slot_action"]["executor"] == 0
    polled = stats["group"]["stats"][c3.master_of(1)]
    assert polled["stats"]["role"] == "master"
    slave = g1["servers"][1]["server"]
    assert stats["group"]["stats"][slave]["stats"]["master_addr"] == c3.master_of(1)
    c3.kill(c3.master_of(2))
    dead = _stats(c3)["group"]["stats"][g2["servers"][0]["server"]]
    assert "connection refused" in dead["error"]["cause"] and "stats" not in dead
    c3.hang(slave)
    assert _stats(c3)["group"]["stats"][slave]["timeout"] is True


def test_an_empty_dashboard_lists_models_as_null() -> None:
    with Cluster.start(groups=0, slaves=0, codis=3) as c:
        assert _stats(c)["group"]["models"] is None


def test_promote_reorders_leaves_the_old_master_last_and_does_not_repoint(c3: Cluster) -> None:
    old = c3.master_of(1)
    first, second = [s for s in c3.servers(1) if s != old]
    assert "can't promote master" in _error(_put(c3, "/api/topom/group/promote/%s/1/%s" % (X, old)))
    c3.kill(old)
    r = _put(c3, "/api/topom/group/promote/%s/1/%s" % (X, second))
    assert r.status_code == 200 and r.json() == "OK"
    order = [s["server"] for s in c3.dashboard.groups3[1]["servers"]]
    assert order == [second, first, old]
    assert c3.role(second)["role"] == "master" and c3.role(first)["master"] == old  # not re-pointed
    assert c3.dashboard.promoting(1) == {}


def test_promote_does_not_check_that_the_target_is_alive(c3: Cluster) -> None:
    old = c3.master_of(1)
    dead = [s for s in c3.servers(1) if s != old][0]
    c3.kill(dead)
    assert _put(c3, "/api/topom/group/promote/%s/1/%s" % (X, dead)).status_code == 200
    assert c3.master_of(1) == dead  # the dashboard now names a dead master: the client must never ask this


def test_a_stuck_promotion_blocks_other_promotions_and_actions_of_the_group(c3: Cluster) -> None:
    old = c3.master_of(1)
    a, b = [s for s in c3.servers(1) if s != old]
    c3.dashboard_fault("promote_stuck", 1)
    assert "resync" in _error(_put(c3, "/api/topom/group/promote/%s/1/%s" % (X, a)))
    assert c3.dashboard.promoting(1)["state"] == "preparing" and c3.master_of(1) == old
    assert "is promoting index" in _error(_put(c3, "/api/topom/group/promote/%s/1/%s" % (X, b)))
    assert "is promoting" in _error(_put(c3, "/api/topom/group/action/create/%s/%s" % (X, b)))
    assert _stats(c3)["group"]["models"][0]["promoting"]["state"] == "preparing"


def test_an_executing_migration_batch_refuses_one_promote_and_slots_in_migration_none(c3: Cluster) -> None:
    """As the real dashboard: only `slot_action.executor` (a batch running) blocks a promote, and a batch ends."""
    c3.dashboard_fault("migration", 1)
    slave = c3.slaves_of(1)[0]
    assert _stats(c3)["slot_action"]["executor"] == 1
    assert "slots-migration is running = 1" in _error(_put(c3, "/api/topom/group/promote/%s/1/%s" % (X, slave)))
    assert _stats(c3)["slot_action"]["executor"] == 0
    c3.dashboard_fault("migrating_slots", 4)
    assert _put(c3, "/api/topom/group/promote/%s/1/%s" % (X, slave)).status_code == 200


def test_sync_action_is_asynchronous_and_repoints_to_servers0(c3: Cluster) -> None:
    stray = c3.slaves_of(1)[0]
    c3.slaveof(stray, c3.master_of(2))
    r = _put(c3, "/api/topom/group/action/create/%s/%s" % (X, stray))
    assert r.status_code == 200
    wait_for(lambda: c3.role(stray)["master"] == c3.master_of(1), 5, what="the sync action to run")
    [entry] = [s for s in c3.dashboard.groups3[1]["servers"] if s["server"] == stray]
    wait_for(lambda: entry["action"].get("state") == "synced", 5, what="the action to be recorded as synced")


def test_add_requires_codis_server_and_a_new_address(c3: Cluster) -> None:
    [plain] = c3.add_nodes(1)
    plain.codis_server = False
    assert "SLOTSINFO" in _error(_put(c3, "/api/topom/group/add/%s/2/%s" % (X, plain.addr)))
    plain.codis_server = True
    assert _put(c3, "/api/topom/group/add/%s/2/%s" % (X, plain.addr)).status_code == 200
    assert c3.servers(2)[plain.addr] == "slave"
    assert "already exists" in _error(_put(c3, "/api/topom/group/add/%s/1/%s" % (X, plain.addr)))
    assert "doesn't exist" in _error(_put(c3, "/api/topom/group/add/%s/7/127.0.0.1:1" % X))
    assert "can't remove master" in _error(_put(c3, "/api/topom/group/del/%s/2/%s" % (X, c3.master_of(2))))


def test_cli_up_codis3(tmp_path: Any) -> None:
    state = tmp_path / "sim.json"
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "up", "--codis", "3", "--product-name", "p1",
                             "--groups", "1", "--slaves", "1", "--port", "0", "--control-port", "0",
                             "--state-file", str(state)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: state.exists() and state.stat().st_size > 0, timeout=20, what="the state file")
        urls = json.loads(state.read_text())
        r = requests.get(urls["dashboard"] + "/api/topom/stats/" + xauth("p1"), timeout=5)
        assert r.status_code == 200 and len(r.json()["group"]["models"][0]["servers"]) == 2
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert "Codis 3.x, product p1" in out


def test_the_stats_loop_runs_on_its_own_and_a_fault_shows_only_after_its_next_poll() -> None:
    with Cluster.start(groups=1, slaves=1, codis=3, product_name="p1", stats_interval=0.3,
                       poll_on_fault=False) as c:
        master = c.master_of(1)
        c.kill(master)
        assert c.dashboard.stats_cache[master].get("stats")  # not noticed yet
        wait_for(lambda: c.dashboard.stats_cache[master].get("error"), 5, what="the stats loop to see the kill")


def test_a_promotion_costs_the_proxies_acknowledgement_and_shows_eof_for_the_new_master() -> None:
    with Cluster.start(groups=1, slaves=1, codis=3, product_name="p1") as c:
        token = c.add_proxy()
        c.dashboard_fault("proxy_ack_seconds", 0.5)
        [slave] = c.slaves_of(1)
        c.kill(c.master_of(1))
        started = time.monotonic()
        assert _put(c, "/api/topom/group/promote/%s/1/%s" % (xauth("p1"), slave)).status_code == 200
        assert time.monotonic() - started >= 0.5
        c.dashboard.poll()
        assert c.dashboard.stats_cache[slave] == {"error": {"Cause": "EOF"}, "unixtime": int(c.clock.now())}
        assert c.dashboard.proxy_alive(token)


def test_a_dead_proxy_fails_the_promote_and_leaves_the_group_preparing() -> None:
    with Cluster.start(groups=1, slaves=1, codis=3, product_name="p1") as c:
        token = c.add_proxy()
        [slave] = c.slaves_of(1)
        c.kill(c.master_of(1))
        c.kill_proxy(token)
        r = _put(c, "/api/topom/group/promote/%s/1/%s" % (xauth("p1"), slave))
        assert r.status_code == 800 and "resync slots failed" in _error(r)
        assert c.dashboard.promoting(1) == {"index": 1, "state": "preparing"}


def test_a_hung_proxy_times_out_in_the_stats_and_holds_the_whole_api_while_a_call_waits_for_it() -> None:
    """As measured on Codis 3.2: the poll of a stopped proxy times out; a promote calls it twice and a removal
    once, each call lasting until the dashboard's client gives up, every other call (stats included) waiting."""
    with Cluster.start(groups=1, slaves=1, codis=3) as c:
        token = c.add_proxy()
        host, port = c.dashboard.proxies[token]["admin_addr"].split(":")
        with socket.create_connection((host, int(port)), timeout=1) as sock:  # a live proxy answers
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(12).startswith(b"HTTP/1.0 200")
        c.dashboard_fault("hung_proxy_wait", 0.4)
        hung_at = time.monotonic()
        c.hang_proxy(token)
        # The real poll gives a proxy a second: until then the dashboard still shows its last answer.
        assert _stats(c)["proxy"]["stats"][token]["stats"]["online"] is True
        wait_for(lambda: _stats(c)["proxy"]["stats"][token].get("timeout") is True, 5, what="the poll to time out")
        assert time.monotonic() - hung_at >= 1.0
        with socket.create_connection((host, int(port)), timeout=1) as sock:  # taken, never answered
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(1)
        [slave] = c.slaves_of(1)
        blocked = []

        def stats_during() -> None:
            time.sleep(0.1)
            started = time.monotonic()
            _stats(c)
            blocked.append(time.monotonic() - started)

        reader = threading.Thread(target=stats_during)
        reader.start()
        started = time.monotonic()
        r = _put(c, "/api/topom/group/promote/%s/1/%s" % (X, slave))
        assert r.status_code == 800 and "Client.Timeout exceeded" in _error(r)
        assert time.monotonic() - started >= 0.8 and c.dashboard.promoting(1) == {"index": 1, "state": "preparing"}
        reader.join(5)
        assert blocked and blocked[0] >= 0.5
        assert "shutdown failed" in _error(_put(c, "/api/topom/proxy/remove/%s/%s/0" % (X, token)))
        started = time.monotonic()
        assert _put(c, "/api/topom/proxy/remove/%s/%s/1" % (X, token)).status_code == 200
        assert time.monotonic() - started >= 0.4 and token not in c.dashboard.proxies


def test_config_rewrite_fails_without_a_config_file_but_the_slaveof_took() -> None:
    with Cluster.start(groups=1, slaves=1, codis=3, product_name="p1") as c:
        [slave] = c.slaves_of(1)
        master = c.master_of(1)
        c.slaveof(slave, None)
        c.nodes[slave].config_file = False
        assert _put(c, "/api/topom/group/action/create/%s/%s" % (xauth("p1"), slave)).status_code == 200
        wait_for(lambda: c.dashboard.groups3[1]["servers"][1]["action"].get("state") == "synced_failed", 5,
                 what="the sync action to end")
        assert c.role(slave)["master"] == master
