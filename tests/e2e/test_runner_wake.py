"""The runner wakes when a master's connection drops (codis_ha_runner.drops): a killed master is failed over long
before the runner's timer comes round, on real redis-server at Redis's defaults; the watch itself on real sockets."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from codis_ha_runner.drops import DropWatch, masters_of
from simulator.real import RealCluster
from simulator.watchers import Watcher
from tests.helpers import wait_for


def test_a_killed_master_is_failed_over_long_before_the_runners_timer(tmp_path: Path) -> None:
    """The timer is 30 s: without the wake the promotion would come about 30 s after the kill."""
    with RealCluster.start(groups=1, slaves=2) as real:
        watcher = Watcher("w1", tmp_path, {"dashboard_url": real.dashboard_url}, interval=30.0,
                          metrics_path=str(tmp_path / "metrics.prom")).start(seconds=120)
        try:
            wait_for((tmp_path / "metrics.prom").exists, 30, what="the runner's first pass")
            master = real.master_of(1)
            assert master is not None
            killed = time.monotonic()
            real.kill(master)
            wait_for(lambda: real.master_of(1) not in (None, master), 15, interval=0.02,
                     what="a promotion woken by the dropped connection\n" + watcher.text())
            assert time.monotonic() - killed < 15
        finally:
            watcher.kill()


def test_the_watch_wakes_on_a_closed_connection_and_not_on_a_silent_one() -> None:
    with socket.create_server(("127.0.0.1", 0)) as quiet, socket.create_server(("127.0.0.1", 0)) as closing:
        addrs = {"127.0.0.1:%d" % s.getsockname()[1] for s in (quiet, closing)}
        watch = DropWatch()
        try:
            watch.watch(addrs)
            held = [quiet.accept()[0], closing.accept()[0]]
            assert watch.wait(0.2) is False  # both silent: the pause runs its course
            held[1].close()
            assert watch.wait(5.0) is True and watch.dropped == ["127.0.0.1:%d" % closing.getsockname()[1]]
            assert set(watch.sockets) == {"127.0.0.1:%d" % quiet.getsockname()[1]}  # the dropped one forgotten
            held[0].close()
        finally:
            watch.close()


def test_only_masters_the_pass_found_alive_are_watched() -> None:
    result = {"groups": [
        {"id": 1, "master": "10.0.0.1:6379", "servers": [{"addr": "10.0.0.1:6379", "alive": True}]},
        {"id": 2, "master": "10.0.0.2:6379", "servers": [{"addr": "10.0.0.2:6379", "alive": False}]},
        {"id": 3, "master": None, "servers": []}]}
    assert masters_of(result) == {"10.0.0.1:6379"}
