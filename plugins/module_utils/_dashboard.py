# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Client of the Codis 2.x dashboard (`codis-config dashboard`) HTTP API.

Quirks it must live with (see the project's notes on the real dashboards): every reply is text/plain,
errors are HTTP 500 with a bare Go error string, an empty cluster answers 500 `zk: node does not exist`,
the coordinator lock never waits (500 `zkutil: obtaining lock timed out`), and promote reads the group
from the BODY, so the body must always carry the right group_id.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional

from ansible_collections.codis.ha.plugins.module_utils._http import Transport, TransportError
from ansible_collections.codis.ha.plugins.module_utils._topology import Server, ServerGroup, Topology

LOCK_CONFLICT = "zkutil: obtaining lock timed out"
EMPTY_CLUSTER = "zk: node does not exist"


class DashboardError(Exception):
    """Anything that went wrong talking to the dashboard; the message is meant for an operator."""


class DashboardUnavailable(DashboardError):
    """No usable HTTP answer: refused, timed out, cut off."""


class DashboardBadReply(DashboardError):
    """An HTTP answer that is not what a Codis dashboard sends."""


class DashboardRejected(DashboardError):
    """The dashboard answered with an error (HTTP 500 and a Go error string)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__("dashboard answered HTTP %d: %s" % (status, text.strip()[:500]))
        self.status = status
        self.text = text.strip()


class LockConflict(DashboardRejected):
    """Another client holds the coordinator lock: transient, worth a retry."""


class Codis2Client:
    def __init__(self, url: str, timeout: float = 5.0, validate_certs: bool = True,
                 ca_path: Optional[str] = None, lock_retries: int = 4, lock_backoff: float = 0.1,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.lock_retries = lock_retries
        self.lock_backoff = lock_backoff
        self._sleep = sleep
        self._transport = Transport(url, timeout, validate_certs, ca_path)
        self.mutations = 0

    def close(self) -> None:
        """Nothing stays open between requests; kept so that callers need not know."""

    # ------------------------------------------------------------------ reads
    def topology(self) -> Topology:
        try:
            data = self._request("GET", "/api/server_groups")
        except DashboardRejected as exc:
            if EMPTY_CLUSTER in exc.text:
                return Topology(())
            raise
        if not isinstance(data, list):
            raise DashboardBadReply("GET /api/server_groups: expected a JSON list of groups, got %s"
                                    % type(data).__name__)
        groups = [parse_group(item, "GET /api/server_groups") for item in data]
        ids = [g.id for g in groups]
        if len(set(ids)) != len(ids):
            raise DashboardBadReply("GET /api/server_groups: the same group id appears twice")
        return Topology(tuple(sorted(groups, key=lambda g: g.id)))

    def group(self, gid: int) -> ServerGroup:
        path = "/api/server_group/%d" % gid
        group = parse_group(self._request("GET", path), "GET " + path)
        if group.id != gid:
            raise DashboardBadReply("GET %s: answered group %d" % (path, group.id))
        return group

    # ------------------------------------------------------------------ mutations
    def promote(self, gid: int, server: Server) -> None:
        # The dashboard takes the group from the body, not the URL: never omit group_id.
        self._mutate("POST", "/api/server_group/%d/promote" % gid,
                     {"type": server.type, "group_id": gid, "addr": server.addr})

    def add_server(self, gid: int, addr: str, server_type: str) -> None:
        if not addr or server_type not in ("master", "slave", "offline"):
            raise ValueError("refusing to send addServer with addr %r and type %r" % (addr, server_type))
        self._mutate("PUT", "/api/server_group/%d/addServer" % gid,
                     {"type": server_type, "group_id": gid, "addr": addr})

    def _mutate(self, method: str, path: str, body: dict[str, Any]) -> None:
        for attempt in range(self.lock_retries + 1):
            try:
                self.mutations += 1
                self._request(method, path, body)
                return
            except LockConflict:
                if attempt == self.lock_retries:
                    raise
                self._sleep(self.lock_backoff * (2 ** attempt))

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
        what = "%s %s%s" % (method, self.url, path)
        try:
            status, text = self._transport.request(method, path, None if body is None else json.dumps(body).encode())
        except TransportError as exc:
            raise DashboardUnavailable(str(exc)) from None
        if status != 200:
            cls = LockConflict if LOCK_CONFLICT in text else DashboardRejected
            raise cls(status, text)
        try:
            return json.loads(text)
        except ValueError:
            raise DashboardBadReply("%s: the answer is not JSON: %r" % (what, text[:200])) from None


def parse_group(item: Any, where: str) -> ServerGroup:
    if not isinstance(item, dict) or not isinstance(item.get("id"), int) or isinstance(item["id"], bool):
        raise DashboardBadReply("%s: a group without an integer id: %r" % (where, _clip(item)))
    servers = item.get("servers")
    if servers is None:
        return ServerGroup(item["id"], ())
    if not isinstance(servers, list):
        raise DashboardBadReply("%s: group %d has servers that are not a list" % (where, item["id"]))
    parsed = []
    for s in servers:
        if not isinstance(s, dict) or not isinstance(s.get("addr"), str) or not isinstance(s.get("type"), str):
            raise DashboardBadReply("%s: group %d has a malformed server: %r" % (where, item["id"], _clip(s)))
        host, sep, port = s["addr"].rpartition(":")
        if not sep or not host or not port.isdigit():
            raise DashboardBadReply("%s: group %d has a server with address %r, not host:port"
                                    % (where, item["id"], s["addr"]))
        parsed.append(Server(s["addr"], s["type"]))
    if len({s.addr for s in parsed}) != len(parsed):
        raise DashboardBadReply("%s: group %d lists the same address twice" % (where, item["id"]))
    return ServerGroup(item["id"], tuple(parsed))


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."

