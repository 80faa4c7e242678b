"""What only a Codis 3.x dashboard has: xauth, the dashboard's own opinion, the promoting state, slot migrations,
asynchronous sync actions and a promote whose SLAVEOF NO ONE may silently fail."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests

from ansible_collections.codis.ha.plugins.module_utils._dashboard import xauth
from simulator import Cluster
from tests.helpers import FAST, promotions, run_module, wait_for

PRODUCT = "codis-prod"


@pytest.fixture
def cluster3() -> Iterator[Cluster]:
    with Cluster.start(groups=3, slaves=2, redis_timeout=0.5, codis=3, product_name=PRODUCT) as c:
        yield c


@pytest.fixture
def args3(cluster3: Cluster) -> dict[str, Any]:
    return dict(FAST, dashboard_url=cluster3.dashboard_url)


def test_auto_detects_codis3_and_learns_the_product_name(cluster3: Cluster, args3: dict[str, Any]) -> None:
    healthy = run_module(args3)
    assert healthy["changed"] is False and [g["decision"] for g in healthy["groups"]] == ["healthy"] * 3
    explicit = run_module(dict(args3, codis_version="3", product_name=PRODUCT))
    assert explicit["groups"] == healthy["groups"]


def test_wrong_product_name_is_a_clear_error_and_changes_nothing(cluster3: Cluster, args3: dict[str, Any]) -> None:
    cluster3.kill(cluster3.master_of(1))
    result = run_module(dict(args3, codis_version="3", product_name="not-the-product"))
    assert result["failed"] is True and result["changed"] is False
    assert "invalid xauth" in result["msg"] and "not-the-product" in result["msg"]
    assert cluster3.audit == []


def test_codis3_without_a_product_name_is_refused(cluster3: Cluster, args3: dict[str, Any]) -> None:
    result = run_module(dict(args3, codis_version="3"))
    assert result["failed"] is True and "needs product_name" in result["msg"]


def test_a_master_the_dashboard_still_reaches_is_not_failed_over_without_force(
        cluster3: Cluster, args3: dict[str, Any]) -> None:
    old = cluster3.master_of(1)
    for slave in cluster3.slaves_of(1):
        cluster3.cut_link(slave)  # no slave is a witness: only the dashboard's poll still sees the master
    cluster3.partition(old, "refuse")  # this host alone cannot reach it; the dashboard's fresh poll can
    refused = run_module(args3)
    assert refused["changed"] is False and cluster3.master_of(1) == old
    [skip] = [s for s in refused["skipped_groups"] if s["group"] == 1]
    assert "dashboard's own fresh poll" in skip["reason"]
    forced = run_module(dict(args3, force=True))
    assert len(promotions(forced)) == 1 and cluster3.master_of(1) != old


def test_a_frozen_stats_poll_is_no_opinion(cluster3: Cluster, args3: dict[str, Any]) -> None:
    old = cluster3.master_of(1)
    cluster3.dashboard_fault("stale_stats")  # the stats loop freezes with the master seen alive
    cluster3.kill(old)
    waiting = run_module(args3)  # the frozen poll is still fresh: it counts
    assert waiting["changed"] is False and cluster3.master_of(1) == old
    cluster3.clock.advance(10)  # by the dashboard's own clock (its Date header) the poll is 10 s old
    result = run_module(args3)
    assert len(promotions(result)) == 1 and cluster3.master_of(1) != old


def test_slots_being_migrated_do_not_put_a_failover_off(cluster3: Cluster, args3: dict[str, Any]) -> None:
    """The real dashboard accepts a promote while slots wait or move between batches, and a migration whose source
    master died never ends: waiting for it left a group on a dead master for good."""
    cluster3.dashboard_fault("migrating_slots", 3)  # slot actions under way while the executor shows 0
    old = cluster3.master_of(1)
    cluster3.kill(old)
    result = run_module(args3)
    assert not result.get("failed") and len(promotions(result)) == 1 and cluster3.master_of(1) != old
    assert result["skipped_groups"] == []
    assert "failed over during a slot migration (slot(s) 0, 1, 2 in state migrating)" in str(result["warnings"])


def test_a_group_left_promoting_by_our_promote_is_resumed_by_the_next_pass(
        cluster3: Cluster, args3: dict[str, Any]) -> None:
    cluster3.kill(cluster3.master_of(1))
    cluster3.kill(cluster3.master_of(2))
    # The first promote to reach the dashboard stops in "preparing"; groups are worked on side by side, so
    # which group that is depends on timing.
    cluster3.dashboard_fault("promote_stuck", 1)
    first = run_module(args3)
    by_group = {a["group"]: a["status"] for a in first["actions"] if a["action"] == "promote"}
    assert sorted(by_group.values()) == ["done", "failed"] and first["failed"] is True, by_group
    [stuck] = [gid for gid, status in by_group.items() if status == "failed"]
    assert "left without a working master: group %d" % stuck in first["msg"]
    assert cluster3.dashboard.promoting(stuck)["state"] == "preparing"
    [target] = [a["server"] for a in first["actions"] if a["action"] == "promote" and a["group"] == stuck]
    second = run_module(args3)
    [promote] = [a for a in second["actions"] if a["action"] == "promote"]
    assert (promote["group"], promote["server"], promote["status"]) == (stuck, target, "done")
    assert "resuming the dashboard's unfinished promotion" in promote["reason"]
    assert cluster3.dashboard.promoting(stuck) == {} and cluster3.master_of(stuck) == target


def test_a_promote_refused_by_an_executing_migration_batch_is_tried_again_in_the_same_pass(
        cluster3: Cluster, args3: dict[str, Any]) -> None:
    old = cluster3.master_of(3)
    cluster3.kill(old)
    cluster3.dashboard_fault("migration", 2)  # the next two promotes meet a batch executing
    result = run_module(args3)
    assert not result.get("failed"), result["msg"]
    assert len(promotions(result)) == 1 and cluster3.master_of(3) != old
    promotes = [a for a in cluster3.audit if a["path"].startswith("/api/topom/group/promote/")]
    assert [a["status"] for a in promotes] == [800, 800, 200]


def test_a_migration_batch_that_never_ends_fails_the_pass_naming_it(cluster3: Cluster, args3: dict[str, Any]) -> None:
    old = cluster3.master_of(3)
    cluster3.kill(old)
    cluster3.dashboard_fault("migration", 1000)
    result = run_module(args3)
    assert result["failed"] is True and "slots-migration is running" in result["msg"]
    assert "left without a working master: group 3" in result["msg"] and cluster3.master_of(3) == old
    cluster3.clear_dashboard_faults()
    assert promotions(run_module(args3)) and cluster3.master_of(3) != old


def test_a_silently_failed_slaveof_no_one_is_sent_again(cluster3: Cluster, args3: dict[str, Any]) -> None:
    old = cluster3.master_of(2)
    cluster3.kill(old)
    cluster3.dashboard_fault("promote_slaveof_fails", 1)
    result = run_module(args3)
    [promote] = [a for a in result["actions"] if a["action"] == "promote"]
    assert promote["status"] == "done" and "sent it again" in promote["detail"]
    new = cluster3.master_of(2)
    assert cluster3.role(new)["role"] == "master" and cluster3.lost_writes(2) == []


def test_the_old_master_stays_listed_last_and_follows_once_back(cluster3: Cluster, args3: dict[str, Any]) -> None:
    cluster3.write(1, 10)
    old = cluster3.master_of(1)
    cluster3.kill(old)
    [new] = promotions(run_module(args3))
    assert cluster3.dashboard.groups3[1]["servers"][-1]["server"] == old
    cluster3.revive(old)
    back = run_module(args3)
    assert [(a["action"], a["server"], a["status"]) for a in back["actions"]] == [("repoint", old, "done")]
    assert cluster3.role(old)["master"] == new and cluster3.lost_writes(1) == []


def _host_lost(cluster: Cluster) -> tuple[str, str]:
    """Group 1's master dies with a proxy registered beside it: (the old master, the dead proxy's token)."""
    dead = cluster.add_proxy()
    old = cluster.master_of(1)
    assert old is not None
    cluster.kill(old)
    cluster.kill_proxy(dead)
    return old, dead


def _index(cluster: Cluster, gid: int, addr: str) -> int:
    return [s["server"] for s in cluster.dashboard.groups3[gid]["servers"]].index(addr)


def test_a_dead_proxy_is_removed_before_the_promotion(cluster3: Cluster, args3: dict[str, Any]) -> None:
    alive = cluster3.add_proxy()
    old, dead = _host_lost(cluster3)
    planned = run_module(args3, check=True)
    assert [(a["action"], a["status"]) for a in planned["actions"]][:2] == [
        ("remove_proxy", "planned"), ("promote", "planned")]
    result = run_module(args3)
    remove, promote = result["actions"][:2]
    assert remove["action"] == "remove_proxy" and remove["status"] == "done" and dead in remove["reason"]
    assert promote["status"] == "done" and cluster3.master_of(1) != old
    assert set(cluster3.dashboard.proxies) == {alive}  # the live proxy is never touched


def test_without_proxy_removal_a_dead_proxy_blocks_the_failover_with_a_reason(
        cluster3: Cluster, args3: dict[str, Any]) -> None:
    old, dead = _host_lost(cluster3)
    result = run_module(dict(args3, remove_dead_proxies=False))
    assert result["actions"] == [] and result["failed"] is True and cluster3.master_of(1) == old
    [skip] = [s for s in result["skipped_groups"] if s["group"] == 1]
    assert "proxy %s" % dead in skip["reason"] and "remove_dead_proxies" in skip["reason"]
    assert cluster3.dashboard.promoting(1) == {}  # never left promoting


def test_a_proxy_only_the_dashboard_cannot_reach_is_not_removed(cluster3: Cluster, args3: dict[str, Any]) -> None:
    token = cluster3.add_proxy()
    cluster3.dashboard.proxy_stats[token] = {"error": {"Cause": "i/o timeout"},
                                             "unixtime": int(cluster3.clock.now())}
    cluster3.dashboard_fault("stale_stats")  # keep that poll; its admin port still accepts
    cluster3.kill(cluster3.master_of(1))
    result = run_module(args3)
    assert all(a["action"] != "remove_proxy" for a in result["actions"])
    assert token in cluster3.dashboard.proxies


def test_a_promotion_the_dashboard_left_half_way_is_resumed_for_the_same_server(
        cluster3: Cluster, args3: dict[str, Any]) -> None:
    old, dead = _host_lost(cluster3)
    # A promote while the proxy was dead (the real codis-ha's, or an operator's) left the group "preparing".
    [target] = [a["server"] for a in run_module(args3, check=True)["actions"] if a["action"] == "promote"]
    cluster3.dashboard.groups3[1]["promoting"] = {"index": _index(cluster3, 1, target),
                                                  "state": "preparing"}
    result = run_module(args3)
    assert [a["action"] for a in result["actions"]][:2] == ["remove_proxy", "promote"]
    promote = [a for a in result["actions"] if a["action"] == "promote"]
    assert [(a["server"], a["status"]) for a in promote] == [(target, "done")], result["msg"]
    assert "resuming the dashboard's unfinished promotion of %s" % target in promote[0]["reason"]
    assert cluster3.dashboard.promoting(1) == {} and cluster3.master_of(1) == target


def test_a_half_way_promotion_of_another_server_is_left_alone(cluster3: Cluster, args3: dict[str, Any]) -> None:
    old = cluster3.master_of(1)
    cluster3.kill(old)
    [best] = [a["server"] for a in run_module(args3, check=True)["actions"] if a["action"] == "promote"]
    [worse] = [a for a in cluster3.slaves_of(1) if a != best]
    cluster3.dashboard.groups3[1]["promoting"] = {"index": _index(cluster3, 1, worse),
                                                  "state": "preparing"}
    result = run_module(args3)
    assert result["actions"] == [] and result["failed"] is True
    [skip] = [s for s in result["skipped_groups"] if s["group"] == 1]
    assert "promotion of %s left in state preparing" % worse in skip["reason"]
    assert "would promote %s instead" % best in skip["reason"]


def test_a_hung_proxy_is_removed_by_force_once_and_the_next_pass_the_dashboard_answers_promotes(
        cluster3: Cluster, args3: dict[str, Any]) -> None:
    """The real dashboard holds its API while its call to a hung proxy lasts (a minute): the pass that removes it
    may end at its deadline before the answer; passes meanwhile cannot read and send nothing; the first pass that
    reads again promotes. The master dies right after the proxy stops, while the dashboard still shows the proxy's
    last answer: the pass's own look at it, and the dashboard's next poll, keep it from promoting first."""
    cluster3.add_proxy()
    hung = cluster3.add_proxy()
    cluster3.dashboard_fault("hung_proxy_wait", 3.0)
    cluster3.hang_proxy(hung)
    old = cluster3.master_of(1)
    cluster3.kill(old)
    args = dict(args3, dashboard_timeout=0.5, pass_timeout=4.0)  # 2 s of it to tell a hang
    first = run_module(args)
    [removal] = [a for a in first["actions"] if a["action"] == "remove_proxy"]
    assert "is hung (the dashboard's poll failed and its admin port takes a connection but answers nothing" \
        in removal["reason"] and removal["status"] == "failed" and first["failed"] is True
    assert "left without a working master: group 1" in first["msg"]
    later = [run_module(args)]
    while not promotions(later[-1]):  # the dashboard is still in its call to the proxy: nothing can be read
        assert len(later) < 20 and later[-1]["failed"] is True and later[-1]["actions"] == [], later[-1]
        later.append(run_module(args))
    assert len(later) >= 2 and cluster3.master_of(1) != old and hung not in cluster3.dashboard.proxies
    removals = [a for a in cluster3.audit if "/api/topom/proxy/remove/" in a["path"]]
    assert len(removals) == 1


def test_the_dashboards_own_loop_lags_a_crash_and_the_pass_waits_for_it() -> None:
    with Cluster.start(groups=1, slaves=2, codis=3, product_name=PRODUCT, stats_interval=0.5,
                       poll_on_fault=False) as c:
        args = dict(FAST, dashboard_url=c.dashboard_url)
        old = c.master_of(1)
        c.kill(old)
        early = run_module(args)  # the dashboard's last poll, still fresh, saw the master alive
        assert early["actions"] == [] and "dashboard's own fresh poll" in early["skipped_groups"][0]["reason"]
        wait_for(lambda: c.dashboard.stats_cache[old].get("error"), 5, what="the dashboard's loop to see it")
        assert len(promotions(run_module(args))) == 1 and c.master_of(1) != old


def test_with_sentinels_registered_the_pass_stands_aside_and_reports(cluster3: Cluster, args3: dict[str, Any]) -> None:
    """Sentinel fails the masters over and the real dashboard follows it; a promote through the dashboard would
    make it tell the sentinels to stop watching the group. The pass changes nothing and says why."""
    assert requests.put("%s/api/topom/sentinels/add/%s/127.0.0.1:26379" % (
        cluster3.dashboard_url, xauth(PRODUCT)), timeout=5).status_code == 200
    old = cluster3.master_of(1)
    cluster3.kill(old)
    for check in (True, False):
        result = run_module(args3, check=check)
        assert result["actions"] == [] and not result.get("failed"), result
        [skip] = [s for s in result["skipped_groups"] if s["group"] == 1]
        assert "Redis Sentinel is registered in the dashboard (127.0.0.1:26379)" in skip["reason"]
        assert "master %s is down" % old in skip["reason"]
    assert cluster3.master_of(1) == old
    assert [a["path"] for a in cluster3.audit if a["method"] == "PUT"] == [
        "/api/topom/sentinels/add/%s/127.0.0.1:26379" % xauth(PRODUCT)]
