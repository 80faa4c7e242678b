# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP transport of the dashboard clients: one `requests` session per pass, bounded in time and size.

Every request has one deadline for the whole exchange (connect, headers, body), capped by the pass's own
deadline. A socket timeout alone is per read: a dashboard that trickles one byte a second never trips it. So
a watchdog shuts the request's socket down when the deadline passes, which ends any blocked read at once.
Bodies are read up to a size limit. The session never retries: a promote whose answer was lost must be judged
by re-reading the dashboard, never sent twice.
"""

from __future__ import annotations

import socket
import threading
import time
import traceback
from email.utils import parsedate_to_datetime
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.codis.ha.plugins.module_utils._deadline import NO_DEADLINE, Deadline

REQUESTS_IMPORT_ERROR: Optional[str]
try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ReadTimeoutError
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    HTTPAdapter = HTTPConnection = HTTPSConnection = HTTPConnectionPool = HTTPSConnectionPool = object
    ReadTimeoutError = OSError
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024


class TransportError(Exception):
    """No usable HTTP answer: refused, timed out, cut off, too large, TLS failed."""


def redact_url(url: str) -> str:
    """The URL without a user:password part, for messages."""
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc:
            return url
        return urlunsplit(parts._replace(netloc="<credentials>@" + parts.netloc.rsplit("@", 1)[1]))
    except ValueError:
        return "<unparsable URL>"


def url_password(url: str) -> Optional[str]:
    """The password part of a URL, so that the module can keep it out of every output."""
    netloc = url.split("://", 1)[-1].split("/", 1)[0]
    if "@" not in netloc:
        return None
    password = netloc.rsplit("@", 1)[0].partition(":")[2]
    return password or None


def url_problem(url: str) -> Optional[str]:
    """Why `url` cannot be a dashboard URL, or None. Never echoes credentials."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return "dashboard_url %r is not a valid URL (%s)" % (shown, exc)
    if parts.scheme not in ("http", "https"):
        return "dashboard_url must be an http:// or https:// URL, got %r" % shown
    if not parts.hostname:
        return "dashboard_url %r names no host" % shown
    if port == 0:
        return "dashboard_url %r has port 0" % shown
    if parts.query or parts.fragment:
        return "dashboard_url %r must not carry a query or a fragment" % shown
    return None


class _Exchange:
    """The sockets one request uses; at its deadline every one of them is shut down, whenever it joined."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[Any] = []
        self.fired = False

    def add(self, sock: Any) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Current(threading.local):
    exchange: Optional[_Exchange] = None


_CURRENT = _Current()


def _watched(cls: Any) -> Any:
    class WatchedConnection(cls):  # type: ignore[misc,valid-type]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            if _CURRENT.exchange is not None and getattr(self, "sock", None) is not None:
                _CURRENT.exchange.add(self.sock)
            return super().getresponse(*args, **kwargs)
    return WatchedConnection


if HAS_REQUESTS:
    class _Pool(HTTPConnectionPool):  # type: ignore[misc,valid-type]
        ConnectionCls = _watched(HTTPConnection)

    class _TLSPool(HTTPSConnectionPool):  # type: ignore[misc,valid-type]
        ConnectionCls = _watched(HTTPSConnection)

    class _Adapter(HTTPAdapter):  # type: ignore[misc,valid-type]
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


class Transport:
    def __init__(self, url: str, timeout: float = 5.0, validate_certs: bool = True,
                 ca_path: Optional[str] = None, deadline: Deadline = NO_DEADLINE,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        problem = url_problem(url)
        if problem:
            raise ValueError(problem)
        self.url = redact_url(url.rstrip("/"))
        self._base = url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        # The dashboard's clock as its last answer's Date header gave it, when it sent one.
        self.last_date: Optional[float] = None
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy from the environment between a watcher and its dashboard
        self._session.verify = (ca_path or True) if validate_certs else False
        adapter = _Adapter(max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict[str, str]] = None, timeout: Optional[float] = None) -> tuple[int, str]:
        """(HTTP status, body as text) or TransportError with a message for an operator. `timeout` replaces the
        transport's own for this request (a promote that waits for the proxies); the pass deadline caps both."""
        what = "%s %s%s" % (method, self.url, path)
        budget = self.deadline.cap(self.timeout if timeout is None else timeout)
        if budget <= 0:
            raise TransportError("%s: not sent, the pass deadline (%s s) was reached" % (what, self.deadline.seconds))
        exchange = _Exchange()
        watchdog = threading.Timer(budget, exchange.fire)
        watchdog.daemon = True
        _CURRENT.exchange = exchange
        watchdog.start()
        response = None
        try:
            response = self._session.request(
                method, self._base + path, data=body, stream=True, timeout=(budget, budget), allow_redirects=False,
                headers=dict({"Accept": "application/json"}, **(headers or {})))
            data = bytearray()
            for chunk in response.iter_content(_CHUNK):
                data += chunk
                if len(data) > self.max_bytes:
                    raise TransportError("%s: the answer is larger than %d bytes" % (what, self.max_bytes))
            if exchange.fired:
                raise TransportError("%s: no complete answer within %.3g s" % (what, budget))
            self.last_date = _date(response.headers.get("Date"))
            return response.status_code, data.decode("utf-8", "replace")
        except TransportError:
            raise
        except Exception as exc:  # requests, urllib3, ssl and socket errors alike: the answer is unusable
            # The socket's own read timeout (the same budget) may beat the watchdog to it: the same verdict.
            if exchange.fired or _read_timed_out(exc):
                raise TransportError("%s: no complete answer within %.3g s" % (what, budget)) from None
            raise TransportError("%s: %s" % (what, _short(exc, self._base, self.url))) from None
        finally:
            watchdog.cancel()
            _CURRENT.exchange = None
            if response is not None:
                response.close()


def _read_timed_out(exc: BaseException) -> bool:
    """A read timeout, as requests raises it, or as it raises it from inside a streamed body (wrapped)."""
    if isinstance(exc, (requests.exceptions.ReadTimeout, ReadTimeoutError, socket.timeout)):
        return True
    return bool(exc.args) and isinstance(exc.args[0], (ReadTimeoutError, socket.timeout))


def _date(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def now_or(value: Optional[float]) -> float:
    return time.time() if value is None else value


def _short(exc: BaseException, secret_url: str, shown_url: str) -> str:
    """The root cause in a few words: requests wraps urllib3, which wraps the socket error that matters."""
    for _depth in range(5):
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException) and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    text = (str(exc) or type(exc).__name__).replace(secret_url, shown_url)
    if "[Errno" in text:
        text = text[text.index("[Errno"):]
    return text if len(text) <= 300 else text[:300] + "..."
