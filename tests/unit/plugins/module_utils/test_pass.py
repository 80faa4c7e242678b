"""The pass's own sentences about what the dashboard did around its actions."""
from __future__ import annotations

from dataclasses import replace

from ansible_collections.codis.ha.plugins.module_utils._pass import _second_poll, proxies_taken_offline
from ansible_collections.codis.ha.plugins.module_utils._topology import Proxy


def test_a_proxy_online_before_a_promotion_and_not_after_is_a_warning() -> None:
    [warning] = proxies_taken_offline({"proxy_1": "online", "proxy_2": "online", "proxy_3": "offline"},
                                      {"proxy_1": "mark_offline", "proxy_2": "online", "proxy_3": "offline"})
    assert warning.startswith("proxy proxy_1 was online before this pass's promotion") and "mark_offline" in warning
    assert "gone" in proxies_taken_offline({"p": "online"}, {})[0]  # no longer listed at all
    assert proxies_taken_offline({"p": "online"}, None) == []  # the list could not be read after: nothing said
    assert proxies_taken_offline(None, {"p": "offline"}) == []  # nor before


def test_the_dashboards_second_poll_decides_a_proxy_silent_here() -> None:
    """Our look began at dashboard time 100 (at most a second early): a failed poll since makes the proxy hung; an
    answer stamped 102 or later ended a second into our silence and clears the doubt; an older one does not."""
    silent = Proxy("p", "127.0.0.1:1", dashboard_alive=True, polled_at=99.0, refused=False, silent=True)
    assert _second_poll(silent, replace(silent, dashboard_alive=False, polled_at=101.0), 100.0).hung
    cleared = _second_poll(silent, replace(silent, polled_at=102.0), 100.0)
    assert not cleared.doubtful and cleared.polled_at == 102.0
    assert _second_poll(silent, replace(silent, polled_at=101.0), 100.0).doubtful
    assert _second_poll(silent, replace(silent, dashboard_alive=None, polled_at=None), 100.0).doubtful
    assert not _second_poll(silent, None, 100.0).doubtful  # no longer registered: no promote calls it
