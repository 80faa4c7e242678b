# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several watchers, one decision: observations, quorum and the acting lock, kept in the coordinator that the
Codis cluster already runs (ZooKeeper or etcd). Nothing here is a consensus of our own:

- each pass publishes, per group, what it saw of the master; an observation counts only while fresh by the
  coordinator's clock (the age of a ZooKeeper node is its mtime against the mtime of the node this pass just
  wrote; an etcd observation lives on a lease that the server expires);
- a failover needs `quorum` fresh observations that the very master the dashboard names is down;
- a pass that would change anything first takes the cluster's lock (kazoo's Lock recipe, or an etcd key bound to
  a lease kept alive while held), then reads and plans again under it; a watcher killed while holding it loses
  it when its session or lease expires.
"""

from __future__ import annotations

import json
import math
import re
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from ansible_collections.codis.ha.plugins.module_utils._checks import number_problem
from ansible_collections.codis.ha.plugins.module_utils._topology import format_addr, parse_addr


# The clients are imported only when a coordinator is set: kazoo and etcd3gw cost a quarter of a second of
# imports, which a pass without one must not pay.
class _NotImported(Exception):
    """Stands for a client library's exception classes until the library is imported."""


KazooClient: Any = None
KazooException: Any = _NotImported
NoNodeError: Any = _NotImported
NodeExistsError: Any = _NotImported
KazooTimeoutError: Any = _NotImported
KazooRetry: Any = None
Etcd3Client: Any = None
Etcd3Exception: Any = _NotImported
requests: Any = None


def _import_kazoo() -> Optional[str]:
    """None once kazoo is imported, else its import error (for missing_required_lib)."""
    global KazooClient, KazooException, NoNodeError, NodeExistsError, KazooTimeoutError, KazooRetry
    try:
        from kazoo.client import KazooClient as client
        from kazoo.exceptions import KazooException as base, NoNodeError as no_node, NodeExistsError as exists
        from kazoo.handlers.threading import KazooTimeoutError as timeout
        from kazoo.retry import KazooRetry as retry
    except ImportError:
        return traceback.format_exc()
    KazooClient, KazooException, NoNodeError, NodeExistsError = client, base, no_node, exists
    KazooTimeoutError, KazooRetry = timeout, retry
    return None


def _import_etcd3gw() -> Optional[str]:
    global Etcd3Client, Etcd3Exception, requests
    try:
        import requests as http
        from etcd3gw.client import Etcd3Client as client
        from etcd3gw.exceptions import Etcd3Exception as base
    except ImportError:
        return traceback.format_exc()
    Etcd3Client, Etcd3Exception, requests = client, base, http
    return None


SCHEMES = {"zookeeper": ("zookeeper", 2181, False), "zk": ("zookeeper", 2181, False),
           "etcd": ("etcd", 2379, False), "etcds": ("etcd", 2379, True)}


OBSERVER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


ROOT = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def coordinator_argument_spec() -> dict[str, Any]:
    return dict(
        coordinator=dict(type="str"),
        quorum=dict(type="int"),
        observer_id=dict(type="str"),
        observation_ttl=dict(type="float", default=CoordinatorSettings.observation_ttl),
        coordinator_timeout=dict(type="float", default=CoordinatorSettings.timeout),
        coordinator_username=dict(type="str"),
        coordinator_password=dict(type="str", no_log=True),
        coordinator_ca_path=dict(type="path"),
        coordinator_cert_path=dict(type="path"),
        coordinator_key_path=dict(type="path", no_log=False),
    )


class CoordinatorError(Exception):
    """The coordinator cannot be used: the watchers cannot agree, so nothing is changed."""


@dataclass(frozen=True)
class CoordinatorSettings:
    url: str
    kind: str
    hosts: tuple[tuple[str, int], ...]
    root: str
    tls: bool
    quorum: int
    observer_id: str
    observation_ttl: float = 5.0
    timeout: float = 10.0
    username: Optional[str] = None
    password: Optional[str] = None
    ca_path: Optional[str] = None
    cert_path: Optional[str] = None
    key_path: Optional[str] = None

    @classmethod
    def from_params(cls, params: dict[str, Any], hostname: str) -> Optional["CoordinatorSettings"]:
        """None without `coordinator`; ValueError naming the culprit when the URL cannot be used."""
        url = params.get("coordinator")
        if not url:
            return None
        kind, hosts, root, tls = parse_coordinator_url(url)
        return cls(url=url, kind=kind, hosts=hosts, root=root, tls=tls or bool(params.get("coordinator_ca_path")),
                   quorum=params.get("quorum") or 2, observer_id=params.get("observer_id") or hostname,
                   observation_ttl=params.get("observation_ttl") or cls.observation_ttl,
                   timeout=params.get("coordinator_timeout") or cls.timeout,
                   username=params.get("coordinator_username"), password=params.get("coordinator_password"),
                   ca_path=params.get("coordinator_ca_path"), cert_path=params.get("coordinator_cert_path"),
                   key_path=params.get("coordinator_key_path"))

    @property
    def where(self) -> str:
        return "%s://%s%s" % (self.kind, ",".join(format_addr(h, p) for h, p in self.hosts), self.root)


def parse_coordinator_url(url: str) -> tuple[str, tuple[tuple[str, int], ...], str, bool]:
    """`zookeeper://zk1:2181,zk2:2181/codis-ha`, `etcd://etcd1:2379/codis-ha` (`etcds://` for TLS)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError("coordinator %r: expected zookeeper://host:port[,host:port...]/path or "
                         "etcd://host:port[,...]/path" % url)
    kind, default_port, tls = SCHEMES[scheme.lower()]
    netloc, slash, path = rest.partition("/")
    root = "/" + path.rstrip("/") if slash and path.strip("/") else "/codis-ha"
    if not ROOT.match(root):
        raise ValueError("coordinator %r: the path %r may only hold letters, digits, '.', '_', '-' and '/'"
                         % (url, root))
    if "@" in netloc:
        raise ValueError("coordinator %r: put credentials in coordinator_username/coordinator_password, not in "
                         "the URL" % _without_credentials(url))
    hosts = []
    for part in netloc.split(","):
        if not part:
            raise ValueError("coordinator %r: empty host in the host list" % url)
        try:
            hosts.append(parse_addr(part if _has_port(part) else format_addr(part.strip("[]"), default_port)))
        except ValueError as exc:
            raise ValueError("coordinator %r: %s" % (url, exc)) from None
        split = urlsplit("//" + part)
        if split.query or split.fragment:
            raise ValueError("coordinator %r: unexpected query or fragment" % url)
    return kind, tuple(hosts), root, tls


def _has_port(part: str) -> bool:
    return part.rsplit("]", 1)[-1].count(":") == 1 if part.startswith("[") else part.count(":") == 1


def _without_credentials(url: str) -> str:
    scheme, _sep, rest = url.partition("://")
    return "%s://%s" % (scheme, rest.split("@", 1)[-1])


def coordinator_problems(params: dict[str, Any], hostname: str) -> list[str]:
    """What is wrong with the coordinator options, each naming the culprit (checked before any connection)."""
    problems: list[Optional[str]] = []
    url = params.get("coordinator")
    quorum = params.get("quorum")
    if not url:
        if quorum not in (None, 1):
            problems.append("quorum=%s needs coordinator: without one a single watcher decides" % quorum)
        return problems
    try:
        parse_coordinator_url(url)
    except ValueError as exc:
        problems.append(str(exc))
    problems.append(number_problem("quorum", quorum, 1, 99))
    observer = params.get("observer_id") or hostname
    if not OBSERVER_ID.match(observer):
        problems.append("observer_id %r: use up to 128 letters, digits, '.', '_' or '-'" % observer)
    problems.append(number_problem("observation_ttl", params.get("observation_ttl"), 1, 3600))
    problems.append(number_problem("coordinator_timeout", params.get("coordinator_timeout"), 1, 600))
    if bool(params.get("coordinator_username")) != bool(params.get("coordinator_password")):
        problems.append("coordinator_username and coordinator_password go together")
    if bool(params.get("coordinator_cert_path")) != bool(params.get("coordinator_key_path")):
        problems.append("coordinator_cert_path and coordinator_key_path go together")
    return [p for p in problems if p]


def missing_library(settings: CoordinatorSettings) -> Optional[tuple[str, str]]:
    """The Python library this coordinator needs and is not installed, with its import error; imports it
    otherwise."""
    if settings.kind == "zookeeper":
        error = _import_kazoo()
        return ("kazoo", error) if error else None
    error = _import_etcd3gw()
    return ("etcd3gw", error) if error else None


# ---------------------------------------------------------------------------------------------- the clients
class Coordinator:
    """One connection for one pass. publish() then fresh(); lock() before any change; close() always."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings

    def connect(self) -> None:
        raise NotImplementedError

    def publish(self, doc: dict[str, Any]) -> None:
        raise NotImplementedError

    def fresh(self) -> dict[str, dict[str, Any]]:
        """Every observer's last document that is still fresh, by observer id."""
        raise NotImplementedError

    def lock(self) -> Optional[str]:
        """None once this pass holds the cluster's lock, else who holds it."""
        raise NotImplementedError

    def holds_lock(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _path(self, *parts: str) -> str:
        return "/".join((self.settings.root,) + parts)

    def _doc(self, raw: Any, observer: str) -> Optional[dict[str, Any]]:
        try:
            doc = json.loads(raw)
        except (ValueError, TypeError):
            return None
        return doc if isinstance(doc, dict) and doc.get("observer") == observer else None


def open_coordinator(settings: CoordinatorSettings) -> Coordinator:
    missing = missing_library(settings)
    if missing:
        raise CoordinatorError("the coordinator %s needs the Python library %s, which is not installed"
                               % (settings.where, missing[0]))
    coordinator: Coordinator = (ZooKeeperCoordinator(settings) if settings.kind == "zookeeper"
                                else EtcdCoordinator(settings))
    try:
        coordinator.connect()
    except CoordinatorError:
        coordinator.close()
        raise
    return coordinator


class ZooKeeperCoordinator(Coordinator):
    def __init__(self, settings: CoordinatorSettings) -> None:
        super().__init__(settings)
        self.client: Any = None
        self.own_mtime: Optional[int] = None
        self._lock: Any = None

    def connect(self) -> None:
        s = self.settings
        auth = [("digest", "%s:%s" % (s.username, s.password))] if s.username else None
        hosts = ",".join(format_addr(h, p) for h, p in s.hosts)
        tls: dict[str, Any] = {}
        if s.tls:
            tls = dict(use_ssl=True, ca=s.ca_path, certfile=s.cert_path, keyfile=s.key_path)
        self.client = KazooClient(hosts=hosts, timeout=s.timeout, auth_data=auth,
                                  connection_retry=KazooRetry(max_tries=0), command_retry=None, **tls)
        try:
            self.client.start(timeout=min(s.timeout, 5.0))
        except (KazooTimeoutError, KazooException, OSError) as exc:
            raise CoordinatorError("cannot connect to the coordinator %s: %s" % (s.where, _text(exc))) from None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (KazooException, KazooTimeoutError, OSError) as exc:
            raise CoordinatorError("coordinator %s failed to %s: %s" % (self.settings.where, what, _text(exc))) from None

    def publish(self, doc: dict[str, Any]) -> None:
        path = self._path("observers", self.settings.observer_id)
        data = json.dumps(doc, sort_keys=True).encode()
        self._call("create %s" % self._path("observers"), self.client.ensure_path, self._path("observers"))
        try:
            stat = self.client.set(path, data)
        except NoNodeError:
            try:
                self.client.create(path, data)
            except NodeExistsError:
                pass
            stat = None
        except (KazooException, KazooTimeoutError, OSError) as exc:
            raise CoordinatorError("coordinator %s failed to publish this watcher's observation: %s"
                                   % (self.settings.where, _text(exc))) from None
        if stat is None:
            stat = self._call("read back %s" % path, self.client.exists, path)
        self.own_mtime = stat.mtime

    def fresh(self) -> dict[str, dict[str, Any]]:
        base = self._path("observers")
        if not self._call("look for %s" % base, self.client.exists, base):
            return {}
        nodes = {}
        for child in self._call("list %s" % base, self.client.get_children, base):
            try:
                nodes[child] = self.client.get("%s/%s" % (base, child))
            except NoNodeError:
                continue
            except (KazooException, KazooTimeoutError, OSError) as exc:
                raise CoordinatorError("coordinator %s failed to read %s: %s" % (self.settings.where, child,
                                                                                 _text(exc))) from None
        # Both mtimes come from the ensemble: the watchers' own clocks never enter the comparison. Before this
        # pass published (check mode), the newest observation stands in for the ensemble's "now".
        now = self.own_mtime if self.own_mtime is not None else max((st.mtime for _r, st in nodes.values()), default=0)
        out = {}
        for child, (raw, stat) in nodes.items():
            if now - stat.mtime <= self.settings.observation_ttl * 1000:
                doc = self._doc(raw, child)
                if doc is not None:
                    out[child] = doc
        return out

    def lock(self) -> Optional[str]:
        self._lock = self.client.Lock(self._path("lock"), identifier=self.settings.observer_id)
        acquired = self._call("take the lock %s" % self._path("lock"), self._lock.acquire, blocking=False)
        if acquired:
            return None
        try:
            contenders = self._lock.contenders()
        except (KazooException, KazooTimeoutError, OSError):
            contenders = []
        return contenders[0] if contenders else "unknown"

    def holds_lock(self) -> bool:
        return bool(self._lock is not None and self._lock.is_acquired and self.client.state == "CONNECTED")

    def close(self) -> None:
        if self.client is None:
            return
        try:
            if self._lock is not None and self._lock.is_acquired:
                self._lock.release()
        except (KazooException, KazooTimeoutError, OSError):
            pass  # the session's end below removes the lock node all the same
        try:
            self.client.stop()
            self.client.close()
        except (KazooException, KazooTimeoutError, OSError):
            pass


class EtcdCoordinator(Coordinator):
    def __init__(self, settings: CoordinatorSettings) -> None:
        super().__init__(settings)
        self.client: Any = None
        self._lease: Any = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._keepalive: Optional[threading.Thread] = None
        self._endpoint: Optional[tuple[str, int]] = None
        self._token: Optional[str] = None

    def _new_client(self, host: str, port: int, token: Optional[str] = None) -> Any:
        s = self.settings
        session = requests.Session()
        if s.tls:
            session.verify = s.ca_path or True
            if s.cert_path:
                session.cert = (s.cert_path, s.key_path)
        if token:
            session.headers["Authorization"] = token
        return Etcd3Client(host=host, port=port, protocol="https" if s.tls else "http", api_path="/v3/",
                           timeout=min(s.timeout, 5.0), session=session)

    def connect(self) -> None:
        errors = []
        for host, port in self.settings.hosts:
            client = self._new_client(host, port)
            try:
                client.status()
                token = self._authenticate(client) if self.settings.username else None
            except (Etcd3Exception, requests.RequestException, OSError, ValueError) as exc:
                errors.append("%s: %s" % (format_addr(host, port), _text(exc)))
                client.session.close()
                continue
            if token:
                client.session.close()
                client = self._new_client(host, port, token)
            self.client, self._endpoint, self._token = client, (host, port), token
            return
        raise CoordinatorError("cannot connect to the coordinator %s: %s" % (self.settings.where, "; ".join(errors)))

    def _authenticate(self, client: Any) -> str:
        reply = client.post(client.get_url("/auth/authenticate"),
                            json={"name": self.settings.username, "password": self.settings.password})
        token = reply.get("token") if isinstance(reply, dict) else None
        if not isinstance(token, str):
            raise ValueError("authentication answered no token")
        return token

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (Etcd3Exception, requests.RequestException, OSError, ValueError, KeyError) as exc:
            raise CoordinatorError("coordinator %s failed to %s: %s" % (self.settings.where, what, _text(exc))) from None

    def publish(self, doc: dict[str, Any]) -> None:
        # The observation lives on its own lease: the server deletes it once observation_ttl has passed.
        lease = self._call("grant an observation lease", self.client.lease, ttl=max(int(math.ceil(
            self.settings.observation_ttl)), 1))
        self._call("publish this watcher's observation", self.client.put,
                   self._path("observers", self.settings.observer_id), json.dumps(doc, sort_keys=True), lease=lease)

    def fresh(self) -> dict[str, dict[str, Any]]:
        prefix = self._path("observers") + "/"
        out = {}
        for raw, meta in self._call("read the observations", self.client.get_prefix, prefix):
            key = meta.get("key", b"")
            observer = (key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key))[len(prefix):]
            doc = self._doc(raw, observer)
            if doc is not None:
                out[observer] = doc
        return out

    def lock(self) -> Optional[str]:
        key = self._path("lock")
        self._lease = self._call("grant the lock's lease", self.client.lease,
                                 ttl=max(int(math.ceil(self.settings.timeout)), 2))
        if self._call("take the lock %s" % key, self.client.create, key, self.settings.observer_id,
                      lease=self._lease):
            self._keepalive = threading.Thread(target=self._keep_alive, name="codis-ha-lock-keepalive", daemon=True)
            self._keepalive.start()
            return None
        holder = self._call("read the lock's holder", self.client.get, key)
        self._revoke()
        return holder[0].decode("utf-8", "replace") if holder else "unknown (it was released meanwhile)"

    def _keep_alive(self) -> None:
        if self._endpoint is None:
            return
        client = self._new_client(*self._endpoint, token=self._token)
        lease = type(self._lease)(self._lease.id, client)
        period = max(self.settings.timeout / 3.0, 0.5)
        while not self._stop.wait(period):
            try:
                if lease.refresh() <= 0:
                    self._lost.set()
                    return
            except (Etcd3Exception, requests.RequestException, OSError, ValueError, KeyError):
                self._lost.set()
                return

    def holds_lock(self) -> bool:
        return self._keepalive is not None and not self._lost.is_set()

    def _revoke(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            try:
                lease.revoke()
            except (Etcd3Exception, requests.RequestException, OSError, ValueError, KeyError):
                pass  # it expires on its own

    def close(self) -> None:
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=self.settings.timeout)
        self._revoke()
        if self.client is not None:
            self.client.session.close()


def _text(exc: BaseException) -> str:
    return ("%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__)[:300]
