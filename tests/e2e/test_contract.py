"""The contract between the simulator's dashboards and the real ones: the same requests to both, and the same
status, content type, body shape and error text back. The simulator may not drift from Codis unnoticed.

Addresses, ports, tokens and product names differ between the two clusters; they are replaced by placeholders
before the texts are compared. Shapes are compared as the sets of keys (recursively, the first element of lists).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterator

import pytest
import requests

from ansible_collections.codis.ha.plugins.module_utils._dashboard import xauth
from simulator import Cluster
from simulator.real_codis import RealCodis2, RealCodis3

pytestmark = pytest.mark.xdist_group("codis-binaries")


def shape(value: Any) -> Any:
    """Keys and kinds, not values: dicts by their keys (an address as a key is ADDR), lists by their first element,
    scalars by kind. A server's INFO (string to string, fields vary with the Redis version) is INFO."""
    if isinstance(value, dict):
        if len(value) > 8 and all(isinstance(v, str) for v in value.values()):
            return "INFO"
        return {re.sub(r"^127\.0\.0\.1:\d+$", "ADDR", k): shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return None
    return type(value).__name__


def normalised(text: str, names: dict[str, str]) -> str:
    for real, placeholder in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(real, placeholder)
    text = re.sub(r"127\.0\.0\.1:\d+", "ADDR", text)
    return re.sub(r"\b[0-9a-f]{32}\b", "TOKEN", text)


def answer(url: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
    r = requests.request(method, url + path, json=body, timeout=30)
    out: dict[str, Any] = {"status": r.status_code,
                           "content_type": r.headers.get("Content-Type", "").split(";")[0].strip()}
    try:
        data = json.loads(r.text)
    except ValueError:
        out["text"] = r.text.strip()
        return out
    if isinstance(data, dict) and set(data) == {"Cause", "Stack"}:
        out["cause"] = data["Cause"]
    elif r.status_code != 200:
        out["text"] = r.text.strip()
    else:
        out["shape"] = shape(data)
    return out


def compare(real: Any, sim: Cluster, requests_to_send: list[tuple[str, Callable[[Any], str], Any]],
            names: Callable[[Any], dict[str, str]]) -> list[str]:
    drift = []
    for method, path_of, body_of in requests_to_send:
        got = {}
        for side, cluster in (("real", real), ("sim", sim)):
            body = body_of(cluster) if callable(body_of) else body_of
            result = answer(cluster.dashboard_url, method, path_of(cluster), body)
            for key in ("cause", "text"):
                if key in result:
                    result[key] = normalised(result[key], names(cluster))
            got[side] = result
        if got["real"] != got["sim"]:
            drift.append("%s %s:\n  real %s\n  sim  %s" % (method, path_of(real), got["real"], got["sim"]))
    return drift


@pytest.fixture(scope="module")
def pair3() -> Iterator[tuple[RealCodis3, Cluster]]:
    with RealCodis3.start(groups=2, slaves=1, proxies=0, product="contract") as real, \
            Cluster.start(groups=2, slaves=1, codis=3, product_name="contract") as sim:
        real.wait_stats_fresh()  # its first polls of servers just re-pointed may still show their EOF
        yield real, sim


@pytest.fixture(scope="module")
def pair2() -> Iterator[tuple[RealCodis2, Cluster]]:
    with RealCodis2.start(groups=2, slaves=1, proxies=0) as real, Cluster.start(groups=2, slaves=1) as sim:
        yield real, sim


X = xauth("contract")


def _master(c: Any, gid: int = 1) -> str:
    return str(c.master_of(gid))


def _slave(c: Any, gid: int = 1) -> str:
    return c.slaves_of(gid)[0]


def test_codis3_the_simulator_answers_as_the_real_dashboard(pair3: tuple[RealCodis3, Cluster]) -> None:
    real, sim = pair3
    sent: list[tuple[str, Callable[[Any], str], Any]] = [
        ("GET", lambda c: "/api/topom/stats/%s" % X, None),
        ("GET", lambda c: "/api/topom/model", None),
        ("GET", lambda c: "/api/topom/stats/%s" % xauth("wrong"), None),
        ("GET", lambda c: "/api/topom/stats", None),
        ("PUT", lambda c: "/api/topom/group/promote/%s/1/%s" % (X, _master(c)), None),
        ("PUT", lambda c: "/api/topom/group/promote/%s/1/127.0.0.1:1" % X, None),
        ("PUT", lambda c: "/api/topom/group/promote/%s/9/%s" % (X, _slave(c)), None),
        ("PUT", lambda c: "/api/topom/group/add/%s/2/%s" % (X, _slave(c)), None),
        ("PUT", lambda c: "/api/topom/group/action/create/%s/127.0.0.1:1" % X, None),
        ("PUT", lambda c: "/api/topom/proxy/remove/%s/%s/1" % (X, "0" * 32), None),
    ]
    drift = compare(real, sim, sent, lambda c: {})
    assert drift == [], "\n".join(drift)


def test_codis2_the_simulator_answers_as_the_real_dashboard(pair2: tuple[RealCodis2, Cluster]) -> None:
    real, sim = pair2
    sent: list[tuple[str, Callable[[Any], str], Any]] = [
        ("GET", lambda c: "/api/server_groups", None),
        ("GET", lambda c: "/api/server_group/1", None),
        ("GET", lambda c: "/api/server_group/9", None),
        ("GET", lambda c: "/api/proxy/list", None),
        ("POST", lambda c: "/api/server_group/1/promote",
         lambda c: {"type": "master", "group_id": 1, "addr": _master(c)}),
        ("PUT", lambda c: "/api/server_group/2/addServer",
         lambda c: {"type": "slave", "group_id": 2, "addr": "127.0.0.1:1"}),
    ]
    drift = compare(real, sim, sent, lambda c: {getattr(c, "product", "test"): "PRODUCT"})
    assert drift == [], "\n".join(drift)
