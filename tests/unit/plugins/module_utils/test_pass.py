"""The pass's own sentences about what the dashboard did around its actions."""
from __future__ import annotations

from ansible_collections.codis.ha.plugins.module_utils._pass import proxies_taken_offline


def test_a_proxy_online_before_a_promotion_and_not_after_is_a_warning() -> None:
    [warning] = proxies_taken_offline({"proxy_1": "online", "proxy_2": "online", "proxy_3": "offline"},
                                      {"proxy_1": "mark_offline", "proxy_2": "online", "proxy_3": "offline"})
    assert warning.startswith("proxy proxy_1 was online before this pass's promotion") and "mark_offline" in warning
    assert "gone" in proxies_taken_offline({"p": "online"}, {})[0]  # no longer listed at all
    assert proxies_taken_offline({"p": "online"}, None) == []  # the list could not be read after: nothing said
    assert proxies_taken_offline(None, {"p": "offline"}) == []  # nor before
