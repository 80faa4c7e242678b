"""Real redis-server processes at Redis's defaults (`repl-ping-replica-period 10`, `repl-timeout 60`, and, where the
case depends on it, `repl-diskless-sync-delay 5`) and the module at its own defaults with a state file, as the role
runs it: the faults a soak found where the e2e tests at ping period 1 saw nothing.

- a live, idle master that only this host is cut off from keeps its slaves as witnesses (its pings come every
  10 s, so its slaves report a last I/O anywhere from 0 to 10 s);
- a second fault right after a failover is failed over too (anti-flapping never keeps a group dead);
- a master killed and restarted in place without its data, while the dashboard still lists it, is replaced by the
  slave still holding its writes; when every slave has already copied its empty data set, the pass fails and says
  which writes are gone.

Every wait is on a condition with a deadline; iptables rules touch loopback only and are removed whatever happens.
"""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from simulator.netfaults import dropped, group_id
from simulator.real import RealCluster
from simulator.real_codis import http
from tests.helpers import pass_params, promotions, run_module, run_module_process, wait_for

# The module's defaults, a state file as the role gives it, and a dashboard timeout for a loaded machine.
DEFAULTS = {k: v for k, v in pass_params().items() if v is not None}


def _args(real: RealCluster, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return dict(DEFAULTS, dashboard_url=real.dashboard_url, state_path=str(tmp_path / "state.json"), **extra)


def _info(real: RealCluster, addr: str) -> dict[str, Any]:
    return real.processes[addr].replication()


def _last_io(real: RealCluster, addr: str) -> int:
    return int(_info(real, addr).get("master_last_io_seconds_ago", -1))


@contextlib.contextmanager
def _writing(real: RealCluster, addr: str) -> Iterator[list[str]]:
    """A client writing to `addr` every 10 ms until the block ends; yields the keys acknowledged."""
    acked: list[str] = []
    stop = threading.Event()

    def write() -> None:
        with contextlib.closing(real.processes[addr].client(socket_timeout=1)) as c:
            while not stop.is_set():
                key = "busy:%d" % len(acked)
                with contextlib.suppress(redis.RedisError):
                    c.set(key, key)
                    acked.append(key)
                stop.wait(0.01)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield acked
    finally:
        stop.set()
        thread.join(5)


@pytest.mark.parametrize("load", ["idle", "busy"])
def test_a_live_master_only_this_host_is_cut_off_from_is_not_failed_over_at_the_default_ping_period(
        tmp_path: Path, load: str) -> None:
    with RealCluster.start(groups=1, slaves=2) as real:
        master = real.master_of(1)
        slaves = real.slaves_of(1)
        args = _args(real, tmp_path)
        if load == "idle":
            # The case that failed: the slaves' last ping came 3 to 6 s before the pass that last saw the master
            # (the next one is 4 s or more away), so they "heard nothing since this host lost it".
            wait_for(lambda: all(3 <= _last_io(real, s) <= 6 for s in slaves), 25, interval=0.1,
                     what="both slaves to report their last ping 3 to 6 s ago")
        assert run_module_process(args)["changed"] is False  # records the master alive, learns its period (10)
        gid = group_id("codis-ha-cutoff")
        with contextlib.ExitStack() as stack:
            acked = stack.enter_context(_writing(real, master)) if load == "busy" else []
            stack.enter_context(dropped([real.processes[master].port], gid))
            result = run_module_process(args, gid)
        group = result["groups"][0]
        assert promotions(result) == [] and real.master_of(1) == master, group["reason"]
        assert group["decision"] == "refused" and "seen alive by" in group["reason"], group["reason"]
        assert real.role(master) == "master" and all(real.linked(s, master) for s in slaves)
        assert load == "idle" or acked, "the busy group's writer acknowledged nothing"


def test_a_second_fault_right_after_a_failover_is_failed_over_too(tmp_path: Path) -> None:
    with RealCluster.start(groups=1, slaves=2) as real:
        first = real.master_of(1)
        args = _args(real, tmp_path)
        assert run_module(args)["changed"] is False
        real.kill(first)
        [second] = promotions(run_module(args))
        [third] = real.slaves_of(1)
        real.wait_linked(third, second)
        keys = real.write(1, 300)
        real.wait_in_sync(1)
        real.kill(second)  # seconds after the first failover, well inside min_failover_interval (300 s)
        result = run_module(args)
        assert promotions(result) == [third], result["groups"][0]["reason"]
        assert "flapping" in result["groups"][0]["reason"]
        assert "min_failover_interval" in str(result.get("warnings")), result.get("warnings")
        assert real.missing(third, keys) == []


def test_a_master_restarted_empty_is_replaced_by_the_slave_that_still_holds_its_writes(tmp_path: Path) -> None:
    # Redis's default diskless sync waits 5 s for more replicas before it sends the (empty) data set: the slaves
    # keep their data until then, and a pass every second has that long to act.
    with RealCluster.start(groups=1, slaves=2, extra=["--repl-diskless-sync-delay", "5"]) as real:
        master = real.master_of(1)
        args = _args(real, tmp_path)
        keys = real.write(1, 500)
        real.wait_in_sync(1)
        assert run_module(args)["changed"] is False  # records the master's history and offset
        real.restart(master)  # killed, and back on its port with no data, still listed as the master
        after_restart = real.write(1, 20, prefix="after")  # acknowledged by the empty master
        result = run_module(args)
        [new] = promotions(result)
        reason = result["groups"][0]["reason"]
        assert "lost its data" in reason and "is promoted before" in reason, reason
        assert real.missing(new, keys) == []
        # In the same pass the other slave follows the new master, and the restarted one becomes its slave (its
        # writes since the restart reported before a full sync discards them): one writable master.
        [other] = [s for s in real.slaves_of(1) if s != new and s != master]
        actions = {a["server"]: a for a in result["actions"]}
        assert actions[other]["action"] == "repoint" and actions[master]["action"] == "readd", result["actions"]
        assert "will be replaced by a full sync" in actions[master]["reason"]
        real.wait_linked(other, new)
        real.wait_linked(master, new)
        assert real.missing(other, keys) == [] and real.missing(master, keys) == []
        assert real.missing(master, after_restart) == after_restart
        assert run_module(args)["groups"][0]["decision"] == "healthy"


def test_a_master_whose_slaves_already_copied_its_empty_data_set_fails_the_pass_naming_the_loss(
        tmp_path: Path) -> None:
    with RealCluster.start(groups=1, slaves=2) as real:  # diskless sync at once: the slaves are wiped in ms
        master = real.master_of(1)
        args = _args(real, tmp_path)
        keys = real.write(1, 500)
        real.wait_in_sync(1)
        assert run_module(args)["changed"] is False
        replid = _info(real, master)["master_replid"]
        real.restart(master)
        wait_for(lambda: all(_info(real, s).get("master_replid") != replid and real.linked(s, master)
                             for s in real.slaves_of(1)), 20, what="both slaves to copy the empty data set")
        result = run_module(args)
        assert promotions(result) == [] and result["failed"] is True
        assert "acknowledged writes are gone" in result["msg"] and replid in result["msg"], result["msg"]
        assert all(real.missing(s, keys) == keys for s in real.slaves_of(1))
        # Said once: the next pass adopts the history the group now has.
        again = run_module(args)
        assert not again.get("failed") and again["groups"][0]["decision"] == "healthy", again["msg"]


def _passes_until_the_frozen_master_is_failed_over(real: RealCluster, master: str, args: dict[str, Any],
                                                   deadline: float) -> tuple[list[dict[str, Any]], float]:
    """The master's process stopped and every packet to its port dropped (a frozen host); passes half a second
    apart until one promotes. Their results, and the seconds from the freeze to that pass's end."""
    results: list[dict[str, Any]] = []
    real.pause(master)
    try:
        with dropped([real.processes[master].port]):
            frozen_at = time.monotonic()

            def failed_over() -> bool:
                results.append(run_module(args))
                return bool(promotions(results[-1]))

            wait_for(failed_over, deadline, interval=0.5, what="a failover of the frozen master")
            return results, time.monotonic() - frozen_at
    finally:
        real.resume(master)


def test_a_frozen_master_at_the_default_ping_period_is_failed_over_once_its_window_passes(tmp_path: Path) -> None:
    with RealCluster.start(groups=1, slaves=2) as real:
        master = real.master_of(1)
        keys = real.write(1, 200)
        real.wait_in_sync(1)
        args = _args(real, tmp_path)
        assert run_module(args)["changed"] is False
        results, elapsed = _passes_until_the_frozen_master_is_failed_over(real, master, args, 60)
        # Until the slaves' silence outlasts a ping period and half of it (15 s), they vouch for the master.
        assert "seen alive by" in results[0]["groups"][0]["reason"]
        [new] = promotions(results[-1])
        assert real.missing(new, keys) == []
        print("frozen master (Redis defaults) failed over after %.1f s, %d passes" % (elapsed, len(results)))


def test_slaves_still_syncing_with_a_new_master_that_only_this_host_is_cut_off_from_are_waited_for(
        tmp_path: Path) -> None:
    """A soak with the real Codis 2 dashboard: a promotion while the old master was frozen; it thawed and took a
    few more writes, which reached one slave; the pass then gave the new master its slaves, both of which needed a
    full sync (Redis's diskless delay: 5 s in ROLE's `handshake`), and this host was cut off from the new master.
    The pass found no witness and promoted the slave that held none of the new master's writes. It must wait for
    the slaves to link; once they have, they are its witnesses."""
    with RealCluster.start(groups=1, slaves=2, extra=["--repl-diskless-sync-delay", "5"]) as real:
        old = real.master_of(1)
        new, other = real.slaves_of(1)
        args = _args(real, tmp_path)
        real.write(1, 200)
        real.wait_in_sync(1)
        assert run_module(args)["changed"] is False  # records the master and learns its delay (5 s)
        # The dashboard's promote (SLAVEOF NO ONE, the old master listed offline) while the old one still takes
        # writes from a client that has not switched: they reach `other`, not `new`.
        status, _text = http("POST", "%s/api/server_group/1/promote" % real.dashboard_url,
                             {"group_id": 1, "addr": new, "type": "slave"})
        assert status == 200 and real.role(new) == "master"
        late = real.write(1, 50, prefix="late", addr=old)
        wait_for(lambda: real.missing(other, late) == [], 10, what="the old master's late writes to reach a slave")
        taken = real.write(1, 100, prefix="taken", addr=new)
        gave = run_module(args)  # the new master's slaves: the old one re-added, the other repointed
        assert sorted(a["action"] for a in gave["actions"]) == ["readd", "repoint"], gave["actions"]
        wait_for(lambda: _role_state(real, other) == "handshake", 5, what="the repointed slave's full sync")
        gid = group_id("codis-ha-cutoff")
        with dropped([real.processes[new].port], gid):
            waiting = run_module_process(args, gid)
            group = waiting["groups"][0]
            assert promotions(waiting) == [] and group["decision"] == "refused", group["reason"]
            assert "full sync's handshake" in group["reason"] and other in group["reason"], group["reason"]
            wait_for(lambda: real.linked(other, new) and real.linked(old, new), 20, what="both slaves to link")
            linked = run_module_process(args, gid)
            group = linked["groups"][0]
            assert promotions(linked) == [] and "seen alive by" in group["reason"], group["reason"]
        assert real.master_of(1) == new and real.role(new) == "master"
        assert real.missing(new, taken) == [] and real.missing(other, taken) == []
        assert run_module(args)["groups"][0]["decision"] == "healthy"


def _role_state(real: RealCluster, addr: str) -> str:
    role = real.processes[addr].role()
    return str(role[3]) if len(role) > 3 else ""


def _ping_period(real: RealCluster, addr: str) -> int:
    with contextlib.closing(real.processes[addr].client()) as c:
        return int(c.config_get("repl-ping-replica-period")["repl-ping-replica-period"])


def test_max_ping_period_caps_the_masters_period_and_a_frozen_master_is_failed_over_within_its_window(
        tmp_path: Path) -> None:
    """max_ping_period 1 (the role's default) on Redis's default 10 s: check mode plans the change, a pass makes
    it (a change with a diff), the next one has nothing to do; a frozen master is then failed over in the window
    of a 1 s period, where at 10 s no rule may do it before 15 s. A live master only this host is cut off from is
    still refused: its slaves hear a ping every second."""
    with RealCluster.start(groups=1, slaves=2) as real:
        master = real.master_of(1)
        args = _args(real, tmp_path, max_ping_period=1)
        assert _ping_period(real, master) == 10
        planned = run_module(args, check=True, diff=True)
        assert [(a["action"], a["status"]) for a in planned["actions"]] == [("set_ping_period", "planned")]
        assert _ping_period(real, master) == 10
        done = run_module(args, diff=True)
        assert done["changed"] and [a["status"] for a in done["actions"]] == ["done"], done["actions"]
        assert "%s: master (role master, pings every 10 s)" % master in done["diff"]["before"], done["diff"]
        assert "%s: master (role master, pings every 1 s)" % master in done["diff"]["after"], done["diff"]
        assert _ping_period(real, master) == 1 and all(_ping_period(real, s) == 10 for s in real.slaves_of(1))
        assert run_module(args)["changed"] is False
        gid = group_id("codis-ha-cutoff")
        wait_for(lambda: all(_last_io(real, s) <= 1 for s in real.slaves_of(1)), 5, what="pings every second")
        with dropped([real.processes[master].port], gid):
            cut = run_module_process(args, gid)
        assert promotions(cut) == [] and "seen alive by" in cut["groups"][0]["reason"], cut["groups"][0]["reason"]
        keys = real.write(1, 200)
        real.wait_in_sync(1)
        results, elapsed = _passes_until_the_frozen_master_is_failed_over(real, master, args, 12)
        [new] = promotions(results[-1])
        assert real.missing(new, keys) == []
        print("frozen master (period capped at 1 s) failed over after %.1f s, %d passes" % (elapsed, len(results)))
