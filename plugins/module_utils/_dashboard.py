# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Clients of the Codis dashboards, one interface for both: topology(), group(), promote(), add_server().

Codis 2.x (`codis-config dashboard`): every reply is text/plain, errors are HTTP 500 with a bare Go error
string, an empty cluster answers 500 `zk: node does not exist`, the coordinator lock never waits (500
`zkutil: obtaining lock timed out`), and promote reads the group from the BODY, so the body must always carry
the right group_id.

Codis 3.x (`codis-dashboard`, topom): every route needs the xauth token derived from the product name, errors
are HTTP 800 with JSON `{"Cause", "Stack"}`, a group's servers[0] is its master and there are no server types,
the dashboard polls every server itself (one more opinion for the planner), a group may be left promoting,
and re-pointing a slave is an asynchronous sync action.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import replace
from typing import Any, Callable, Optional
from urllib.parse import quote

from ansible_collections.codis.ha.plugins.module_utils._deadline import NO_DEADLINE, Deadline
from ansible_collections.codis.ha.plugins.module_utils._http import DEFAULT_MAX_BYTES, Transport, TransportError, now_or
from ansible_collections.codis.ha.plugins.module_utils._topology import (
    Proxy,
    Server,
    ServerGroup,
    Topology,
    clip,
    parse_addr,
)

LOCK_CONFLICT = "zkutil: obtaining lock timed out"
DEFAULT_PROMOTE_TIMEOUT = 40.0
# The Codis 3 dashboard polls every server about once a second; an older poll is no opinion (its stats loop may
# have frozen, and it would go on showing a dead master alive).
FRESH_POLL_SECONDS = 5.0
# Slot actions that mean a migration is under way (the executor counter is almost never non-zero).
MIGRATING_STATES = ("pending", "preparing", "prepared", "migrating")
# The real dashboard refuses a promote while one migration batch executes (a fraction of a second), and only then:
# between batches, and while slots wait pending, it accepts one. A migration whose source master died stalls for
# good, so a promote refused so is tried again within the pass, never put off "until the migration ends".
MIGRATION_RUNNING = "slots-migration is running"
MIGRATION_RETRIES = 20
MIGRATION_BACKOFF = 0.25
# The real dashboard's HTTP client gives up on a proxy after a minute; removing a hung proxy waits for that.
REMOVE_PROXY_TIMEOUT = 75.0
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


class DashboardClient:
    """What a pass needs from a dashboard; one subclass per Codis version."""

    def __init__(self, url: str, timeout: float = 5.0, validate_certs: bool = True,
                 ca_path: Optional[str] = None, deadline: Deadline = NO_DEADLINE,
                 max_bytes: int = DEFAULT_MAX_BYTES, transport: Optional[Transport] = None) -> None:
        self._transport = transport or Transport(url, timeout, validate_certs, ca_path, deadline, max_bytes)
        self.url = self._transport.url  # credentials in the URL never reach a message
        self.timeout = timeout
        # A promote waits for every proxy: the Codis 2 dashboard holds it about 30 s when a registered proxy died.
        self.promote_timeout = max(timeout, DEFAULT_PROMOTE_TIMEOUT)
        self.mutations = 0

    def close(self) -> None:
        self._transport.close()

    def topology(self) -> Topology:
        raise NotImplementedError

    def group(self, gid: int) -> ServerGroup:
        raise NotImplementedError

    def promote(self, gid: int, server: Server) -> None:
        raise NotImplementedError

    def add_server(self, gid: int, addr: str, server_type: str) -> None:
        raise NotImplementedError

    def retry_master(self, gid: int, addr: str) -> bool:
        """Ask the dashboard to make its listed master `addr` a Redis master again; False if it cannot."""
        return False

    def remove_proxy(self, token: str) -> None:
        raise DashboardError("this dashboard lists no proxies to remove")

    def force_remove_locks(self) -> None:
        """Codis 2: delete the coordinator's lock nodes (what `codis-config action remove-lock` asks for)."""
        raise DashboardError("this dashboard has no coordinator lock to remove")

    def dashboard_time(self) -> float:
        """Now on the dashboard's clock: the Date of its last answer (whole seconds), or ours if it sent none."""
        return now_or(self._transport.last_date)

    def proxy_states(self) -> Optional[dict[str, str]]:
        """Each proxy's state as the dashboard lists it (Codis 2: online, offline, mark_offline); None when this
        dashboard does not say or cannot be read now (never a reason to fail a pass)."""
        return None

    def _call(self, method: str, path: str, body: Optional[bytes] = None,
              timeout: Optional[float] = None) -> tuple[int, str]:
        try:
            return self._transport.request(method, path, body, timeout=timeout)
        except TransportError as exc:
            raise DashboardUnavailable(str(exc)) from None

    def _json(self, what: str, text: str) -> Any:
        try:
            return json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise DashboardBadReply("%s: the answer is JSON nested too deep to be a dashboard's" % what) from None
        except ValueError:
            raise DashboardBadReply("%s: the answer is not JSON: %r" % (what, text[:200])) from None


class Codis2Client(DashboardClient):

    def __init__(self, url: str, timeout: float = 5.0, validate_certs: bool = True,
                 ca_path: Optional[str] = None, lock_retries: int = 4, lock_backoff: float = 0.1,
                 sleep: Callable[[float], None] = time.sleep, **transport: Any) -> None:
        super().__init__(url, timeout, validate_certs, ca_path, **transport)
        self.lock_retries = lock_retries
        self.lock_backoff = lock_backoff
        self._sleep = sleep

    # ------------------------------------------------------------------ reads
    def topology(self) -> Topology:
        try:
            data = self._request("GET", "/api/server_groups")
        except DashboardRejected as exc:
            if EMPTY_CLUSTER in exc.text:
                return Topology((), empty_answer="GET /api/server_groups answered %s" % clip(repr(exc.text), 200))
            raise
        if not isinstance(data, list):
            raise DashboardBadReply("GET /api/server_groups: expected a JSON list of groups, got %s"
                                    % type(data).__name__)
        groups = [parse_group(item, "GET /api/server_groups") for item in data]
        ids = [g.id for g in groups]
        if len(set(ids)) != len(ids):
            raise DashboardBadReply("GET /api/server_groups: the same group id appears twice")
        return Topology(tuple(sorted(groups, key=lambda g: g.id)))

    def proxy_states(self) -> Optional[dict[str, str]]:
        try:
            data = self._request("GET", "/api/proxy/list")
        except DashboardError:
            return None
        if not isinstance(data, list):
            return None
        return {p["id"]: str(p.get("state")) for p in data if isinstance(p, dict) and isinstance(p.get("id"), str)}

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
                     {"type": server.type, "group_id": gid, "addr": server.addr}, timeout=self.promote_timeout)

    def add_server(self, gid: int, addr: str, server_type: str) -> None:
        if not addr or server_type not in ("master", "slave", "offline"):
            raise ValueError("refusing to send addServer with addr %r and type %r" % (addr, server_type))
        self._mutate("PUT", "/api/server_group/%d/addServer" % gid,
                     {"type": server_type, "group_id": gid, "addr": addr})

    def force_remove_locks(self) -> None:
        # A GET, as the dashboard routes it; it takes no lock itself.
        self.mutations += 1
        answer = self._request("GET", "/api/force_remove_locks")
        if not isinstance(answer, dict) or answer.get("ret") != 0:
            raise DashboardBadReply("GET /api/force_remove_locks: expected {\"ret\": 0, ...}, got %s"
                                    % clip(repr(answer), 200))

    def _mutate(self, method: str, path: str, body: dict[str, Any], timeout: Optional[float] = None) -> None:
        for attempt in range(self.lock_retries + 1):
            try:
                self.mutations += 1
                self._request(method, path, body, timeout)
                return
            except LockConflict:
                if attempt == self.lock_retries:
                    raise
                self._sleep(self.lock_backoff * (2 ** attempt))

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, body: Optional[dict[str, Any]] = None,
                 timeout: Optional[float] = None) -> Any:
        status, text = self._call(method, path, None if body is None else json.dumps(body).encode(), timeout)
        if status != 200:
            cls = LockConflict if LOCK_CONFLICT in text else DashboardRejected
            raise cls(status, text)
        return self._json("%s %s%s" % (method, self.url, path), text)


def xauth(product_name: str) -> str:
    """The token every Codis 3 route wants: the first 16 bytes of sha256("Codis-XAuth-[<product>]"), in hex."""
    return hashlib.sha256(("Codis-XAuth-[%s]" % product_name).encode("utf-8")).hexdigest()[:32]


class Codis3Client(DashboardClient):

    def __init__(self, url: str, product_name: str, timeout: float = 5.0, validate_certs: bool = True,
                 ca_path: Optional[str] = None, sleep: Callable[[float], None] = time.sleep,
                 **transport: Any) -> None:
        super().__init__(url, timeout, validate_certs, ca_path, **transport)
        self.product_name = product_name
        self.xauth = xauth(product_name)
        self._sleep = sleep

    # ------------------------------------------------------------------ reads
    def topology(self) -> Topology:
        path = "/api/topom/stats/%s" % self.xauth
        data = self._request("GET", path)
        # Freshness is judged by the dashboard's own clock (its Date header), not by ours.
        return parse_stats(data, "GET /api/topom/stats", self.dashboard_time())

    def group(self, gid: int) -> ServerGroup:
        group = self.topology().group(gid)
        if group is None:
            raise DashboardBadReply("GET /api/topom/stats: group %d is no longer listed" % gid)
        return group

    # ------------------------------------------------------------------ mutations
    def promote(self, gid: int, server: Server) -> None:
        path = "/api/topom/group/promote/%s/%d/%s" % (self.xauth, gid, _segment(server.addr))
        for attempt in range(MIGRATION_RETRIES + 1):
            self.mutations += 1
            try:
                self._request("PUT", path, timeout=self.promote_timeout)
                return
            except DashboardRejected as exc:
                if MIGRATION_RUNNING not in exc.text or attempt == MIGRATION_RETRIES:
                    raise
            self._sleep(MIGRATION_BACKOFF)  # the batch that blocked it ends in a fraction of a second

    def add_server(self, gid: int, addr: str, server_type: str) -> None:
        """Codis 3 has no types: a server of the group is made a slave of servers[0] by a sync action."""
        if not addr or server_type != "slave":
            raise ValueError("refusing to add %r as %r: Codis 3 only adds slaves" % (addr, server_type))
        # The executor re-read the group just before: the server is almost always in it already, so ask for the
        # sync action first and add the server only when the dashboard does not know it.
        try:
            self._sync_action(addr)
        except DashboardRejected as exc:
            if "doesn't exist" not in exc.text:
                raise
            self.mutations += 1
            self._request("PUT", "/api/topom/group/add/%s/%d/%s" % (self.xauth, gid, _segment(addr)))
            self._sync_action(addr)

    def retry_master(self, gid: int, addr: str) -> bool:
        # Codis 3's promote only logs a failed SLAVEOF NO ONE; a sync action on servers[0] sends it again.
        self._sync_action(addr)
        return True

    def remove_proxy(self, token: str) -> None:
        """Force the dashboard to forget a proxy (what Codis 3's own codis-ha does with a dead one). The dashboard
        first asks the proxy to shut down; a hung proxy makes that call last until the dashboard's HTTP client
        gives up (one minute), its whole API held meanwhile: the request may wait that long (the pass deadline
        still caps it), and is never sent twice in a pass."""
        self.mutations += 1
        self._request("PUT", "/api/topom/proxy/remove/%s/%s/1" % (self.xauth, quote(token, safe="")),
                      timeout=max(self.timeout, REMOVE_PROXY_TIMEOUT))

    def _sync_action(self, addr: str) -> None:
        """SLAVEOF the group's servers[0] (NO ONE for servers[0] itself), carried out by the dashboard later."""
        self.mutations += 1
        self._request("PUT", "/api/topom/group/action/create/%s/%s" % (self.xauth, _segment(addr)))

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, timeout: Optional[float] = None) -> Any:
        try:
            status, text = self._call(method, path, timeout=timeout)
        except DashboardUnavailable as exc:  # a timeout or a reset names the URL, token included
            raise DashboardUnavailable(self._scrub(str(exc))) from None
        shown = "%s %s%s" % (method, self.url, self._scrub(path))
        if status == 200:
            return self._json(shown, text)
        cause = text.strip()
        if status == 800:
            try:
                cause = str(json.loads(text).get("Cause") or cause)
            except (ValueError, AttributeError):
                pass
            if "xauth" in cause:
                cause += " (the token is derived from product_name %r)" % self.product_name
        raise DashboardRejected(status, self._scrub(cause))

    def _scrub(self, text: str) -> str:
        """The token opens every route of the dashboard: no message carries it (Go errors quote the URL)."""
        return text.replace(self.xauth, "<xauth>")


def parse_stats(data: Any, where: str, now: Optional[float] = None) -> Topology:
    """GET /api/topom/stats -> Topology: servers[0] is the master, the dashboard's fresh polls are its opinion.
    `now` is the dashboard's clock (None: the polls are taken as they are, for tests of the shape alone)."""
    if not isinstance(data, dict) or not isinstance(data.get("group"), dict):
        raise DashboardBadReply("%s: expected an object with a group object, got %s"
                                % (where, clip(repr(data), 200)))
    if data.get("closed") is True:
        raise DashboardUnavailable("%s: the dashboard reports that it is closed" % where)
    models = data["group"].get("models") or []  # an empty list comes as null
    stats = data["group"].get("stats") or {}
    if not isinstance(models, list) or not isinstance(stats, dict):
        raise DashboardBadReply("%s: group.models must be a list and group.stats an object" % where)
    slot_action = data.get("slot_action") if isinstance(data.get("slot_action"), dict) else {}
    migrations = slot_action.get("executor") or 0
    migrating = _migrating_slots(data.get("slots"))
    groups = []
    for item in models:
        if not isinstance(item, dict):
            raise DashboardBadReply("%s: a group that is not an object: %s" % (where, clip(repr(item), 200)))
        servers = item.get("servers") or []
        if not isinstance(servers, list) or not all(isinstance(s, dict) for s in servers):
            raise DashboardBadReply("%s: group %r has servers that are not a list of objects" % (where, item.get("id")))
        as_v2 = {"id": item.get("id"), "servers": [
            {"addr": s.get("server"), "type": "master" if i == 0 else "slave"} for i, s in enumerate(servers)]}
        group = parse_group(as_v2, where)
        group = replace(group, servers=tuple(replace(s, dashboard_alive=_polled_alive(stats.get(s.addr), now))
                                             for s in group.servers))
        promoting = item.get("promoting") if isinstance(item.get("promoting"), dict) else {}
        if promoting.get("state"):
            index = promoting.get("index", 0)
            target = (group.servers[index].addr if isinstance(index, int) and not isinstance(index, bool)
                      and 0 < index < len(group.servers) else None)
            group = replace(group, promoting=target, busy="the dashboard shows a promotion of %s left in state %s "
                            "(index %s); only a promotion of that same server may finish it, nothing else touches "
                            "the group" % (target or "an unknown server", promoting["state"], index))
        elif migrations or migrating:
            group = replace(group, migrating=migrating or "%s migration batch(es) executing" % migrations)
        groups.append(group)
    ids = [g.id for g in groups]
    if len(set(ids)) != len(ids):
        raise DashboardBadReply("%s: the same group id appears twice" % where)
    return Topology(tuple(sorted(groups, key=lambda g: g.id)), demoted_type="slave",
                    proxies=_proxies(data.get("proxy"), now), sentinels=_sentinels(data.get("sentinels")))


def _sentinels(section: Any) -> tuple[str, ...]:
    """The sentinels registered in the dashboard (`sentinels.model.servers`); entries that are not strings are
    left out. A dashboard without the section has none."""
    model = section.get("model") if isinstance(section, dict) else None
    servers = model.get("servers") if isinstance(model, dict) else None
    return tuple(s for s in servers if isinstance(s, str)) if isinstance(servers, list) else ()


def _proxies(section: Any, now: Optional[float]) -> tuple[Proxy, ...]:
    """The proxies the dashboard lists, with its fresh poll of each; entries it cannot read are left out."""
    if not isinstance(section, dict) or not isinstance(section.get("models"), list):
        return ()
    stats = section.get("stats") if isinstance(section.get("stats"), dict) else {}
    out = []
    for model in section["models"]:
        if not isinstance(model, dict) or not isinstance(model.get("token"), str) \
                or not isinstance(model.get("admin_addr"), str):
            continue
        seen = stats.get(model["token"])
        alive = _polled_alive(seen, now)
        out.append(Proxy(model["token"], model["admin_addr"], alive, _poll_time(seen) if alive is not None else None))
    return tuple(out)


def _polled_alive(seen: Any, now: Optional[float]) -> Optional[bool]:
    if not isinstance(seen, dict):
        return None
    polled = _poll_time(seen)
    if now is not None and (polled is None or not -FRESH_POLL_SECONDS <= now - polled <= FRESH_POLL_SECONDS):
        return None  # a frozen (or future) poll says nothing about now
    if seen.get("timeout") or seen.get("error"):
        return False
    return True if isinstance(seen.get("stats"), dict) and seen["stats"] else None


def _poll_time(seen: Any) -> Optional[float]:
    """When the dashboard's poll ended (its unixtime), or None when it did not say in a number."""
    polled = seen.get("unixtime") if isinstance(seen, dict) else None
    if isinstance(polled, bool) or not isinstance(polled, (int, float)) or not math.isfinite(polled):
        return None
    return float(polled)


def _migrating_slots(slots: Any) -> str:
    """'slots 3, 4 migrating to group 2' for the slots whose action is under way, or ''."""
    if not isinstance(slots, list):
        return ""
    moving = [s for s in slots if isinstance(s, dict) and isinstance(s.get("action"), dict)
              and s["action"].get("state") in MIGRATING_STATES]
    if not moving:
        return ""
    more = " and %d more" % (len(moving) - 5) if len(moving) > 5 else ""
    ids = ", ".join(str(s.get("id")) for s in moving[:5]) + more
    states = sorted({str(s["action"].get("state")) for s in moving})
    return "slot(s) %s in state %s" % (ids, "/".join(states))


def _segment(addr: str) -> str:
    return quote(addr, safe=":[]")


def detect_version(url: str, timeout: float = 5.0, validate_certs: bool = True,
                   ca_path: Optional[str] = None, transport: Optional[Transport] = None) -> tuple[int, Optional[str]]:
    """(2 or 3, the product name a Codis 3 dashboard reports), from one read-only request per pass: a Codis 3
    dashboard answers GET /api/topom/model with its model, a Codis 2 dashboard has no such route (404)."""
    transport = transport or Transport(url, timeout, validate_certs, ca_path)
    try:
        status, text = transport.request("GET", "/api/topom/model")
    except TransportError as exc:
        raise DashboardUnavailable(str(exc)) from None
    if status == 404:
        return 2, None
    try:
        model = json.loads(text, parse_constant=_no_constant) if status == 200 else None
    except (ValueError, RecursionError):
        model = None
    if isinstance(model, dict) and isinstance(model.get("product_name"), str):
        return 3, model["product_name"]
    raise DashboardBadReply("%s answers GET /api/topom/model with HTTP %d %r: neither a Codis 3 model nor the "
                            "Codis 2 404; set codis_version" % (transport.url, status, text[:100]))


def parse_group(item: Any, where: str) -> ServerGroup:
    """One group; a server the tool cannot understand marks the group invalid (with the reason) instead of
    failing the whole reply, so that the other groups are still protected."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), int) or isinstance(item["id"], bool):
        raise DashboardBadReply("%s: a group without an integer id: %s" % (where, clip(repr(item), 200)))
    gid = item["id"]
    servers = item.get("servers")
    if servers is None:
        return ServerGroup(gid, ())
    if not isinstance(servers, list):
        return ServerGroup(gid, (), invalid="the dashboard lists the group's servers as %s, not a list"
                           % clip(repr(servers), 200))
    parsed = []
    unreadable = []
    problem = None
    for s in servers:
        if not isinstance(s, dict) or not isinstance(s.get("addr"), str) or not isinstance(s.get("type"), str):
            problem = problem or "the dashboard lists a malformed server %s" % clip(repr(s), 200)
            if isinstance(s, dict) and isinstance(s.get("addr"), str):
                unreadable.append(s["addr"])
            continue
        try:
            parse_addr(s["addr"])
        except ValueError as exc:
            problem = problem or "the dashboard lists server address %s, which is not host:port (%s)" % (
                clip(repr(s["addr"]), 200), exc)
        parsed.append(Server(s["addr"], s["type"]))
    if problem is None and len({s.addr for s in parsed}) != len(parsed):
        problem = "the dashboard lists the same address twice"
    return ServerGroup(gid, tuple(parsed), invalid=problem, unreadable=tuple(unreadable))


def _no_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, no dashboard sends them.
    raise ValueError("%s is not JSON" % name)
