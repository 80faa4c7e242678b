"""Each Codis 2.x dashboard behaviour from shared/codis-dashboard-api.md, one test each, over real HTTP."""
from __future__ import annotations

import json
import threading

import requests

from simulator import Cluster
from tests.helpers import wait_for


def _get(c: Cluster, path: str) -> requests.Response:
    return requests.get(c.dashboard_url + path, timeout=5)


def _put(c: Cluster, path: str, body: object) -> requests.Response:
    return requests.put(c.dashboard_url + path, data=json.dumps(body), timeout=10)


def _promote(c: Cluster, gid_url: int, body: object) -> requests.Response:
    return requests.post(c.dashboard_url + "/api/server_group/%d/promote" % gid_url,
                         data=json.dumps(body), timeout=10)


def test_server_group_json_shape_is_pretty_and_text_plain(codis2_cluster: Cluster) -> None:
    r = _get(codis2_cluster, "/api/server_groups")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "\n    " in r.text
    groups = r.json()
    assert [g["id"] for g in groups] == [1, 2, 3]
    server = groups[0]["servers"][0]
    assert set(server) == {"type", "group_id", "addr"} and server["group_id"] == 1
    assert set(groups[0]) == {"id", "product_name", "servers"}


def test_empty_group_has_null_servers() -> None:
    with Cluster.start(groups=0) as c:
        assert _put(c, "/api/server_groups", {"id": 5}).status_code == 200
        assert _get(c, "/api/server_group/5").json()["servers"] is None


def test_mutation_success_is_msg_ok_ret_0(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    r = _put(codis2_cluster, "/api/server_group/1/addServer", {"type": "slave", "group_id": 1, "addr": slave})
    assert r.status_code == 200 and r.json() == {"msg": "OK", "ret": 0}


def test_error_is_http_500_plain_text_not_json(codis2_cluster: Cluster) -> None:
    r = _get(codis2_cluster, "/api/server_group/99")
    assert r.status_code == 500
    assert r.text == "group 99 is not found"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_servers_are_sorted_by_address_not_insertion_order() -> None:
    with Cluster.start(groups=1, slaves=3) as c:
        addrs = [s["addr"] for s in _get(c, "/api/server_group/1").json()["servers"]]
        assert addrs == sorted(addrs)


def test_empty_cluster_answers_500_zk_node_does_not_exist() -> None:
    with Cluster.start(groups=0) as c:
        r = _get(c, "/api/server_groups")
        assert (r.status_code, r.text) == (500, "zk: node does not exist")


def test_non_digit_group_id_is_404(codis2_cluster: Cluster) -> None:
    assert _get(codis2_cluster, "/api/server_group/abc").status_code == 404


def test_create_existing_group_fails(codis2_cluster: Cluster) -> None:
    r = _put(codis2_cluster, "/api/server_groups", {"id": 1})
    assert (r.status_code, r.text) == (500, "group already exists")


def test_add_server_forces_group_id_to_url(codis2_cluster: Cluster) -> None:
    [node] = codis2_cluster.add_nodes(1)
    r = _put(codis2_cluster, "/api/server_group/2/addServer", {"type": "slave", "group_id": 1, "addr": node.addr})
    assert r.status_code == 200
    assert codis2_cluster.servers(2)[node.addr] == "slave" and node.addr not in codis2_cluster.servers(1)
    stored = [s for s in _get(codis2_cluster, "/api/server_group/2").json()["servers"] if s["addr"] == node.addr]
    assert stored[0]["group_id"] == 2


def test_add_server_is_an_upsert_that_changes_type(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    assert _put(codis2_cluster, "/api/server_group/1/addServer",
                {"type": "offline", "group_id": 1, "addr": slave}).status_code == 200
    assert codis2_cluster.servers(1)[slave] == "offline" and len(codis2_cluster.servers(1)) == 3


def test_add_server_has_no_duplicate_check_across_groups(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    assert _put(codis2_cluster, "/api/server_group/2/addServer",
                {"type": "offline", "group_id": 2, "addr": slave}).status_code == 200
    assert slave in codis2_cluster.servers(1) and slave in codis2_cluster.servers(2)


def test_add_second_master_fails_node_already_exists(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    r = _put(codis2_cluster, "/api/server_group/1/addServer", {"type": "master", "group_id": 1, "addr": slave})
    assert (r.status_code, r.text) == (500, "node already exists")


def test_first_server_of_empty_group_becomes_master(codis2_cluster: Cluster) -> None:
    [node] = codis2_cluster.add_nodes(1)
    assert _put(codis2_cluster, "/api/server_group/9/addServer",
                {"type": "slave", "group_id": 9, "addr": node.addr}).status_code == 200
    assert codis2_cluster.servers(9) == {node.addr: "master"}


def test_add_slave_sends_slaveof_master(codis2_cluster: Cluster) -> None:
    [node] = codis2_cluster.add_nodes(1)
    master = codis2_cluster.master_of(1)
    assert _put(codis2_cluster, "/api/server_group/1/addServer",
                {"type": "slave", "group_id": 1, "addr": node.addr}).status_code == 200
    assert codis2_cluster.role(node.addr)["master"] == master and codis2_cluster.role(node.addr)["link_up"]


def test_add_unreachable_slave_answers_500_but_stays_stored(codis2_cluster: Cluster) -> None:
    [node] = codis2_cluster.add_nodes(1)
    codis2_cluster.kill(node.addr)
    r = _put(codis2_cluster, "/api/server_group/1/addServer", {"type": "slave", "group_id": 1, "addr": node.addr})
    assert r.status_code == 500 and "connection refused" in r.text
    assert codis2_cluster.servers(1)[node.addr] == "slave"


def test_add_offline_is_only_stored(codis2_cluster: Cluster) -> None:
    [node] = codis2_cluster.add_nodes(1)
    assert _put(codis2_cluster, "/api/server_group/1/addServer",
                {"type": "offline", "group_id": 1, "addr": node.addr}).status_code == 200
    assert codis2_cluster.role(node.addr)["role"] == "master"


def test_remove_master_is_refused(codis2_cluster: Cluster) -> None:
    r = _put(codis2_cluster, "/api/server_group/1/removeServer", {"addr": codis2_cluster.master_of(1)})
    assert (r.status_code, r.text) == (500, "cannot remove master, use promote first")


def test_promote_reads_group_from_body_not_url(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    r = _promote(codis2_cluster, 7, {"type": "slave", "group_id": 1, "addr": slave})
    assert r.status_code == 200
    assert codis2_cluster.master_of(1) == slave


def test_promote_without_group_id_fails_group_0(codis2_cluster: Cluster) -> None:
    r = _promote(codis2_cluster, 1, {"addr": codis2_cluster.slaves_of(1)[0]})
    assert (r.status_code, r.text) == (500, "group 0 is not found")


def test_malformed_body_reaches_handler_as_zero_value(codis2_cluster: Cluster) -> None:
    r = requests.post(codis2_cluster.dashboard_url + "/api/server_group/1/promote", data="{not json", timeout=5)
    assert (r.status_code, r.text) == (500, "group 0 is not found")


def test_promote_unknown_addr_fails_no_such_addr(codis2_cluster: Cluster) -> None:
    r = _promote(codis2_cluster, 1, {"group_id": 1, "addr": "127.0.0.1:1"})
    assert (r.status_code, r.text) == (500, "no such addr")


def test_promote_does_not_check_type_offline_can_be_promoted(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    _put(codis2_cluster, "/api/server_group/1/addServer", {"type": "offline", "group_id": 1, "addr": slave})
    assert _promote(codis2_cluster, 1, {"group_id": 1, "addr": slave}).status_code == 200
    assert codis2_cluster.master_of(1) == slave


def test_promote_dead_target_answers_500_and_changes_nothing(codis2_cluster: Cluster) -> None:
    before = codis2_cluster.servers(1)
    slave = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.kill(slave)
    r = _promote(codis2_cluster, 1, {"group_id": 1, "addr": slave})
    assert r.status_code == 500 and "connection refused" in r.text
    assert codis2_cluster.servers(1) == before


def test_promote_sends_slaveof_no_one_and_marks_old_master_offline(codis2_cluster: Cluster) -> None:
    old, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    assert _promote(codis2_cluster, 1, {"group_id": 1, "addr": slave}).status_code == 200
    assert codis2_cluster.servers(1)[old] == "offline"
    assert codis2_cluster.role(slave)["role"] == "master"
    assert codis2_cluster.role(old)["role"] == "master"  # nothing is sent to the old master


def test_promote_does_not_repoint_other_slaves(codis2_cluster: Cluster) -> None:
    old = codis2_cluster.master_of(1)
    first, second = codis2_cluster.slaves_of(1)
    codis2_cluster.kill(old)
    assert _promote(codis2_cluster, 1, {"group_id": 1, "addr": first}).status_code == 200
    assert codis2_cluster.role(second)["master"] == old and not codis2_cluster.role(second)["link_up"]


def test_promote_500_after_commit_applies_the_promotion(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(1)[0]
    codis2_cluster.dashboard_fault("promote-500-after-commit", 1)
    r = _promote(codis2_cluster, 1, {"group_id": 1, "addr": slave})
    assert r.status_code == 500 and "Some proxies may not stop cleanly" in r.text
    assert codis2_cluster.master_of(1) == slave


def test_lock_conflict_fault_fails_next_mutations(codis2_cluster: Cluster) -> None:
    codis2_cluster.dashboard_fault("lock_conflict", 2)
    slave = codis2_cluster.slaves_of(1)[0]
    body = {"type": "slave", "group_id": 1, "addr": slave}
    texts = [_put(codis2_cluster, "/api/server_group/1/addServer", body).text for dummy in range(3)]
    assert texts[:2] == ["zkutil: obtaining lock timed out"] * 2 and json.loads(texts[2])["ret"] == 0


def test_lock_does_not_wait_for_a_concurrent_mutation() -> None:
    with Cluster.start(groups=1, slaves=2, redis_timeout=1.0) as c:
        hung = c.slaves_of(1)[0]
        c.hang(hung)
        slow = threading.Thread(target=_promote, args=(c, 1, {"group_id": 1, "addr": hung}))
        slow.start()
        wait_for(c.dashboard._coordinator_lock.locked, what="the promote to hold the lock")
        r = _put(c, "/api/server_group/1/addServer", {"type": "slave", "group_id": 1, "addr": c.slaves_of(1)[1]})
        slow.join()
        assert (r.status_code, r.text) == (500, "zkutil: obtaining lock timed out")


def test_old_master_returning_stays_offline_and_master(codis2_cluster: Cluster) -> None:
    old, slave = codis2_cluster.master_of(1), codis2_cluster.slaves_of(1)[0]
    codis2_cluster.kill(old)
    _promote(codis2_cluster, 1, {"group_id": 1, "addr": slave})
    codis2_cluster.revive(old)
    assert codis2_cluster.servers(1)[old] == "offline" and codis2_cluster.role(old)["role"] == "master"


def test_delete_group(codis2_cluster: Cluster) -> None:
    assert requests.delete(codis2_cluster.dashboard_url + "/api/server_group/3", timeout=5).status_code == 200
    assert 3 not in codis2_cluster.group_ids()


def test_audit_log_records_every_mutating_call(codis2_cluster: Cluster) -> None:
    _promote(codis2_cluster, 1, {"group_id": 1, "addr": "127.0.0.1:1"})
    _get(codis2_cluster, "/api/server_groups")
    assert [(a["method"], a["path"], a["status"]) for a in codis2_cluster.audit] == [
        ("POST", "/api/server_group/1/promote", 500)]


def test_dashboard_down_refuses_connections_then_comes_back(codis2_cluster: Cluster) -> None:
    codis2_cluster.dashboard_fault("down")
    try:
        _get(codis2_cluster, "/api/server_groups")
        raise AssertionError("the dashboard answered while down")
    except requests.ConnectionError:
        pass
    codis2_cluster.dashboard_fault("down", False)
    assert _get(codis2_cluster, "/api/server_groups").status_code == 200


def test_dashboard_garbage_json(codis2_cluster: Cluster) -> None:
    codis2_cluster.dashboard_fault("garbage")
    r = _get(codis2_cluster, "/api/server_groups")
    assert r.status_code == 200 and r.text.startswith("<html>")


def test_dashboard_truncated_body(codis2_cluster: Cluster) -> None:
    codis2_cluster.dashboard_fault("truncated")
    try:
        _get(codis2_cluster, "/api/server_groups").json()
        raise AssertionError("a truncated body was read whole")
    except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError, ValueError):
        pass


def test_dashboard_slow(codis2_cluster: Cluster) -> None:
    codis2_cluster.dashboard_fault("slow", 400)
    try:
        requests.get(codis2_cluster.dashboard_url + "/api/server_groups", timeout=0.1)
        raise AssertionError("a slow dashboard answered within 0.1 s")
    except requests.Timeout:
        pass


def test_unknown_server_type_injected(codis2_cluster: Cluster) -> None:
    slave = codis2_cluster.slaves_of(2)[0]
    codis2_cluster.inject_server_type(2, slave, "weird")
    servers = _get(codis2_cluster, "/api/server_group/2").json()["servers"]
    assert {"type": "weird", "group_id": 2, "addr": slave} in servers
