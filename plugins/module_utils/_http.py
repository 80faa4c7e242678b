# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP transport of the dashboard clients, on the standard library.

One connection per request: a kept-alive connection that the dashboard closed would tempt a silent resend,
and resending a promote is exactly what must never happen. On loopback or a LAN the extra connect is noise;
not importing an HTTP library saves a third of the CPU time of a pass (docs/benchmarks.md).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Optional
from urllib.parse import urlsplit


class TransportError(Exception):
    """No usable HTTP answer: refused, timed out, cut off, TLS failed."""


class Transport:
    def __init__(self, url: str, timeout: float = 5.0, validate_certs: bool = True,
                 ca_path: Optional[str] = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// URL: %r" % url)
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._context: Optional[ssl.SSLContext] = None
        if self._https:
            self._context = ssl.create_default_context(cafile=ca_path)
            if not validate_certs:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[dict[str, str]] = None) -> tuple[int, str]:
        """(HTTP status, body as text) or TransportError with a message for an operator."""
        what = "%s %s%s" % (method, self.url, path)
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, self._base + path, body=body,
                         headers=dict({"Connection": "close", "Accept": "application/json"}, **(headers or {})))
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        except (socket.timeout, TimeoutError):
            raise TransportError("%s: no answer within %s s" % (what, self.timeout)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError("%s: %s" % (what, _short(exc))) from None
        finally:
            conn.close()


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."
