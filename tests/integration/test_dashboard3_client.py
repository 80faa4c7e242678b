"""The Codis 3 client: stats parsed into a Topology (pure), 800 errors, xauth, version detection."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from ansible_collections.codis.ha.plugins.module_utils._dashboard import (
    Codis3Client,
    DashboardBadReply,
    DashboardRejected,
    DashboardUnavailable,
    detect_version,
    parse_stats,
    xauth,
)
from simulator import Cluster
from tests.helpers import wait_for


def _stats(models: Any, stats: Any = None, executor: int = 0, **extra: Any) -> dict[str, Any]:
    return dict({"closed": False, "group": {"models": models, "stats": stats or {}},
                 "slot_action": {"executor": executor}}, **extra)


def _group(gid: int, *addrs: str, promoting: Any = None) -> dict[str, Any]:
    return {"id": gid, "servers": [{"server": a, "action": {}} for a in addrs], "promoting": promoting or {}}


def test_servers0_is_master_the_rest_slaves_and_the_dashboards_view_is_kept() -> None:
    topology = parse_stats(_stats([_group(2, "h:2", "h:3"), _group(1, "h:1")], {
        "h:2": {"stats": {"role": "master"}, "unixtime": 1},
        "h:3": {"timeout": True}, "h:1": {"error": {"cause": "refused"}}}), "here")
    assert [g.id for g in topology.groups] == [1, 2] and topology.demoted_type == "slave"
    g2 = topology.group(2)
    assert g2 is not None and g2.snapshot() == {"h:2": "master", "h:3": "slave"}
    assert [s.dashboard_alive for s in g2.servers] == [True, False]
    g1 = topology.group(1)
    assert g1 is not None and g1.servers[0].dashboard_alive is False and g1.busy is None


def test_null_models_is_an_empty_cluster_and_missing_stats_mean_no_opinion() -> None:
    assert parse_stats(_stats(None), "here").groups == ()
    topology = parse_stats(_stats([_group(1, "h:1", "h:2")], {"h:2": {"stats": {}}}), "here")
    assert [s.dashboard_alive for s in topology.groups[0].servers] == [None, None]


def test_a_promotion_left_half_done_makes_a_group_busy_and_a_migration_is_only_noted() -> None:
    promoting = parse_stats(_stats([_group(1, "h:1", "h:2", promoting={"index": 1, "state": "prepared"}),
                                    _group(2, "h:3")]), "here")
    assert "state prepared" in str(promoting.groups[0].busy) and promoting.groups[1].busy is None
    migrating = parse_stats(_stats([_group(1, "h:1"), _group(2, "h:3")], executor=1), "here")
    assert all(g.busy is None and g.migrating == "1 migration batch(es) executing" for g in migrating.groups)


@pytest.mark.parametrize("data, needle", [
    ([], "expected an object"),
    ({"group": []}, "expected an object"),
    (_stats({"id": 1}), "must be a list"),
    (_stats([_group(1, "h:1"), _group(1, "h:2")]), "appears twice"),
    (_stats([{"id": "1", "servers": []}]), "integer id"),
    (_stats([{"id": 1, "servers": ["h:1"]}]), "list of objects"),
])
def test_broken_stats_are_clear_errors(data: Any, needle: str) -> None:
    with pytest.raises(DashboardBadReply, match=needle):
        parse_stats(data, "here")


@pytest.mark.parametrize("servers, needle", [
    ([{"server": "nohostport"}], "not host:port"),
    ([{"server": "h:70000"}], "1 to 65535"),
    ([{"server": 6379}], "malformed server"),
    ([{"server": "h:1"}, {"server": "h:1"}], "same address twice"),
])
def test_a_group_the_tool_cannot_read_is_marked_not_the_reply(servers: Any, needle: str) -> None:
    topology = parse_stats(_stats([{"id": 1, "servers": servers}, _group(2, "h:3", "h:4")]), "here")
    assert needle in str(topology.group(1).invalid)
    assert topology.group(2).invalid is None and topology.group(2).master.addr == "h:3"


def test_a_closed_dashboard_is_unavailable() -> None:
    with pytest.raises(DashboardUnavailable, match="closed"):
        parse_stats(_stats([], closed=True), "here")


@pytest.fixture
def c3() -> Iterator[Cluster]:
    with Cluster.start(groups=2, slaves=1, codis=3, product_name="p3") as c:
        yield c


def test_800_errors_carry_the_cause_and_wrong_xauth_names_the_product(c3: Cluster) -> None:
    client = Codis3Client(c3.dashboard_url, "p3", timeout=2)
    with pytest.raises(DashboardRejected, match="can't promote master") as err:
        client.promote(1, client.group(1).servers[0])
    assert err.value.status == 800
    with pytest.raises(DashboardRejected, match="invalid xauth.*'wrong'"):
        Codis3Client(c3.dashboard_url, "wrong", timeout=2).topology()
    assert xauth("p3") not in str(err.value)


def test_detect_version_for_both_dashboards_and_for_something_else(c3: Cluster) -> None:
    assert detect_version(c3.dashboard_url, timeout=2) == (3, "p3")
    with Cluster.start(groups=1, slaves=1) as c2:
        assert detect_version(c2.dashboard_url, timeout=2) == (2, None)
    with Cluster.start(groups=0) as empty2:
        assert detect_version(empty2.dashboard_url, timeout=2) == (2, None)
    c3.dashboard_fault("garbage")
    with pytest.raises(DashboardBadReply, match="neither"):
        detect_version(c3.dashboard_url, timeout=2)


def test_add_server_adds_an_unknown_server_then_makes_it_follow_servers0(c3: Cluster) -> None:
    client = Codis3Client(c3.dashboard_url, "p3", timeout=2)
    [new] = c3.add_nodes(1)
    client.add_server(2, new.addr, "slave")
    assert c3.servers(2)[new.addr] == "slave" and client.mutations == 3  # refused action, add, action
    wait_for(lambda: c3.role(new.addr)["master"] == c3.master_of(2), 5, what="the sync action to run")
    known = c3.slaves_of(1)[0]
    client.add_server(1, known, "slave")
    assert client.mutations == 4  # a server already in the group costs one call
    with pytest.raises(ValueError):
        client.add_server(1, known, "master")


def test_the_xauth_token_is_in_no_error_message_a_timeout_or_a_refusal_makes(c3: Cluster) -> None:
    """A timed-out stats GET and promote PUT name their URL, and the real dashboard's Go errors quote it: the token
    opens every route, so each message shows <xauth> instead."""
    token = xauth("p3")
    client = Codis3Client(c3.dashboard_url, "p3", timeout=0.3)
    slave = client.group(1).servers[1]
    c3.dashboard_fault("slow_ms", 1500)
    client.promote_timeout = 0.3
    errors = []
    for call in (client.topology, lambda: client.promote(1, slave)):
        with pytest.raises(DashboardUnavailable) as err:
            call()
        errors.append(str(err.value))
    c3.dashboard_fault("slow_ms", 0)
    assert all("<xauth>" in e and token not in e for e in errors), errors
    assert client._scrub("Put http://h/api/topom/group/promote/%s/1/x: EOF" % token).count(token) == 0
