"""Every default in one place: the module's argument spec reads its defaults from the dataclasses that hold the
parsed options, and the options parsed from the spec's defaults are those dataclasses' defaults."""
from __future__ import annotations

from ansible_collections.codis.ha.plugins.module_utils._coordinator import CoordinatorSettings
from ansible_collections.codis.ha.plugins.module_utils._options import PassOptions, argument_spec
from ansible_collections.codis.ha.plugins.module_utils._planner import Policy
from ansible_collections.codis.ha.plugins.module_utils._probe import ProbeSettings


def spec_defaults(**given: object) -> dict[str, object]:
    params = {name: option.get("default") for name, option in argument_spec().items()}
    params.update(given)
    return params


def test_the_options_parsed_from_the_spec_defaults_are_the_dataclass_defaults() -> None:
    parsed = PassOptions.from_params(spec_defaults(dashboard_url="http://dashboard:18087"))
    assert parsed == PassOptions(dashboard_url="http://dashboard:18087")
    assert parsed.policy == Policy() and parsed.probe == ProbeSettings()


def test_run_pass_without_ansible_gets_the_same_defaults_for_what_it_is_not_given() -> None:
    assert PassOptions.from_params({"dashboard_url": "http://d", "probe_timeout": 1.0, "probe_attempts": 2,
                                    "probe_interval": 0.2, "probe_concurrency": 1024}) == PassOptions("http://d")


def test_the_coordinator_defaults_are_its_settings_defaults() -> None:
    parsed = CoordinatorSettings.from_params(spec_defaults(coordinator="zookeeper://zk:2181/codis-ha"), "host")
    assert parsed is not None
    assert (parsed.observation_ttl, parsed.timeout) == (CoordinatorSettings.observation_ttl,
                                                        CoordinatorSettings.timeout)
    assert argument_spec()["observation_ttl"]["default"] == CoordinatorSettings.observation_ttl
