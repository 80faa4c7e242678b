"""The module file and the front-end layer behind it: argument checks and the library guard, with the pass itself
replaced (one layer)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from ansible_collections.codis.ha.plugins.module_utils import _front, _pass
from ansible_collections.codis.ha.plugins.module_utils._report import PassResult
from ansible_collections.codis.ha.plugins.modules import codis_ha
from tests.helpers import patch_module_args


def run(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        codis_ha.main()
    return dict(json.loads(capsys.readouterr().out))


@pytest.fixture
def no_pass(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake(params: dict[str, Any], **kwargs: Any) -> PassResult:
        calls.append(params)
        return PassResult({"changed": False, "actions": [], "groups": [], "skipped_groups": [], "msg": "ok"})
    monkeypatch.setattr(_pass, "run_pass", fake)
    return calls


def test_invalid_numbers_fail_before_the_pass(capsys: pytest.CaptureFixture[str], no_pass: list[Any]) -> None:
    result = run(capsys, dashboard_url="http://127.0.0.1:18087", probe_timeout=float("nan"))
    assert result["failed"] is True and "probe_timeout" in result["msg"] and not no_pass


def test_quorum_without_a_coordinator_is_refused(capsys: pytest.CaptureFixture[str], no_pass: list[Any]) -> None:
    result = run(capsys, dashboard_url="http://127.0.0.1:18087", quorum=2)
    assert result["failed"] is True and "quorum=2 needs coordinator" in result["msg"] and not no_pass


def test_a_missing_client_library_is_named(capsys: pytest.CaptureFixture[str], no_pass: list[Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_front, "missing_library", lambda settings: ("kazoo", "ImportError: no kazoo"))
    result = run(capsys, dashboard_url="http://127.0.0.1:18087", coordinator="zookeeper://127.0.0.1:2181/x")
    assert result["failed"] is True and "kazoo" in result["msg"] and not no_pass


def test_a_valid_call_reaches_the_pass_with_every_default(
        capsys: pytest.CaptureFixture[str], no_pass: list[Any]) -> None:
    result = run(capsys, dashboard_url="http://127.0.0.1:18087")
    assert result["changed"] is False and result["msg"] == "ok"
    [params] = no_pass
    assert params["parallel_groups"] == 8 and params["probe_concurrency"] == 1024 and params["coordinator"] is None


def test_an_exception_of_ours_is_one_sentence(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(params: dict[str, Any], **kwargs: Any) -> PassResult:
        raise KeyError("oops")
    monkeypatch.setattr(_pass, "run_pass", broken)
    result = run(capsys, dashboard_url="http://127.0.0.1:18087")
    assert result["failed"] is True and result["msg"].startswith(codis_ha.INTERNAL_ERROR)
    assert "Traceback" not in json.dumps(result)


# ---------------------------------------------------------------------------------- the runner's front-end
def test_without_ansible_the_spec_checks_the_arguments(no_pass: list[Any]) -> None:
    """The runner validates with Ansible's own validator and the module's spec: a wrong type, an unknown option
    and one of two options that go together are each named, and the pass does not run."""
    for args, named in (({"dashboard_url": "http://127.0.0.1:18087", "probe_timeout": "soon"}, "probe_timeout"),
                        ({"dashboard_url": "http://127.0.0.1:18087", "dashbord_timeout": 1}, "dashbord_timeout"),
                        ({"dashboard_url": "http://127.0.0.1:18087", "redis_tls_cert_path": "/c"},
                         "redis_tls_key_path")):
        result = _front.pass_without_ansible(args)
        assert result["failed"] is True and result["msg"].startswith(_front.INVALID) and named in result["msg"]
    assert not no_pass
    result = _front.pass_without_ansible({"dashboard_url": "http://127.0.0.1:18087", "probe_timeout": "0.5"})
    assert result == {"changed": False, "actions": [], "groups": [], "skipped_groups": [], "msg": "ok",
                      "failed": False, "warnings": []}
    assert no_pass[-1]["probe_timeout"] == 0.5 and no_pass[-1]["parallel_groups"] == 8  # converted, defaulted


def test_without_ansible_no_secret_reaches_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    def echoing(params: dict[str, Any], **kwargs: Any) -> PassResult:
        seen = "seen %s and %s" % (params["dashboard_url"], params["redis_password"])
        return PassResult({"changed": False, "msg": seen},
                          failed_msg="cannot log in with %s" % params["redis_password"],
                          warnings=["url %s" % params["dashboard_url"]])
    monkeypatch.setattr(_pass, "run_pass", echoing)
    result = _front.pass_without_ansible({"dashboard_url": "http://admin:hunter2@127.0.0.1:18087",
                                          "redis_password": "s3cr3t-redis"})
    text = json.dumps(result)
    assert result["failed"] is True and "cannot log in with" in result["msg"]
    assert "hunter2" not in text and "s3cr3t-redis" not in text and "********" in text


def test_without_ansible_an_exception_of_ours_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(params: dict[str, Any], **kwargs: Any) -> PassResult:
        raise ValueError("oops")
    monkeypatch.setattr(_pass, "run_pass", broken)
    result = _front.pass_without_ansible({"dashboard_url": "http://127.0.0.1:18087"})
    assert result["failed"] is True and result["msg"].startswith(_front.INTERNAL_ERROR) and "ValueError" in result["msg"]
