"""The RESP command interpreter of the fake Redis nodes: what each command answers, byte for byte where a client
could tell (AUTH and HELLO errors, LOADING, SLOTSINFO for codis-server), against the world in model.py."""
from __future__ import annotations

import fnmatch
from typing import Any, Callable, Union

from .info import render_info
from .model import REDIS_VERSION, REPL_TIMEOUT, Node, Session, World
from .resp import Error, Status

NOAUTH = Error("NOAUTH Authentication required.")
WRONGPASS = Error("WRONGPASS invalid username-password pair or user is disabled.")
AUTH_NOT_CONFIGURED = Error(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?")
HELLO_NOAUTH = Error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> "
    "AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol "
    "version at the same time")
READONLY = Error("READONLY You can't write against a read only replica.")
NO_AUTH_COMMANDS = frozenset({"auth", "hello", "quit"})

CLOSE = object()  # a reply marker: send the preceding reply, then close the connection


def _wrong_args(name: str) -> Error:
    return Error("ERR wrong number of arguments for '%s' command" % name)


def _check_credentials(node: Node, user: str, password: str) -> bool:
    if user == "default":
        if "default" in node.users:
            return node.users["default"] == password
        return node.password is not None and node.password == password
    return user in node.users and node.users[user] == password


def _auth(node: Node, session: Session, args: list[str]) -> Any:
    if len(args) not in (1, 2):
        return Error("ERR syntax error") if len(args) > 2 else _wrong_args("auth")
    if len(args) == 1 and node.password is None and "default" not in node.users:
        return AUTH_NOT_CONFIGURED
    user, password = ("default", args[0]) if len(args) == 1 else (args[0], args[1])
    if _check_credentials(node, user, password):
        session.authenticated = True
        return Status("OK")
    return WRONGPASS


def _hello(world: World, node: Node, session: Session, args: list[str]) -> Any:
    proto = session.protocol
    i = 0
    if args:
        try:
            proto = int(args[0])
        except ValueError:
            return Error("ERR Protocol version is not an integer or out of range")
        if proto not in (2, 3):
            return Error("NOPROTO unsupported protocol version")
        i = 1
    while i < len(args):
        opt = args[i].lower()
        if opt == "auth" and i + 2 < len(args):
            if not _check_credentials(node, args[i + 1], args[i + 2]):
                return WRONGPASS
            session.authenticated = True
            i += 3
        elif opt == "setname" and i + 1 < len(args):
            session.name = args[i + 1]
            i += 2
        else:
            return Error("ERR Syntax error in HELLO option '%s'" % args[i])
    if not session.authenticated:
        return HELLO_NOAUTH
    session.protocol = proto
    return {"server": "redis", "version": REDIS_VERSION, "proto": proto, "id": session.client_id,
            "mode": "standalone", "role": "replica" if node.master else "master", "modules": []}


def execute(world: World, node: Node, session: Session, raw: list[bytes]) -> Any:
    name = raw[0].decode(errors="replace").lower()
    args = [a.decode(errors="replace") for a in raw[1:]]
    if not session.authenticated and name not in NO_AUTH_COMMANDS:
        return NOAUTH
    handler = _COMMANDS.get(name)
    if handler is None:
        shown = "".join("'%s' " % a[:128] for a in args[:20])
        return Error("ERR unknown command '%s', with args beginning with: %s" % (raw[0].decode(
            errors="replace")[:128], shown))
    if name in ("set", "get", "dbsize", "info", "role") and node.loading:
        return Error("LOADING Redis is loading the dataset in memory")
    return handler(world, node, session, args)


def _cmd_ping(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) > 1:
        return _wrong_args("ping")
    return args[0] if args else Status("PONG")


def _cmd_echo(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return args[0] if len(args) == 1 else _wrong_args("echo")


def _cmd_quit(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return (Status("OK"), CLOSE)


def _cmd_select(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) != 1:
        return _wrong_args("select")
    try:
        db = int(args[0])
    except ValueError:
        return Error("ERR value is not an integer or out of range")
    if not 0 <= db < 16:
        return Error("ERR DB index is out of range")
    session.db = db
    return Status("OK")


def _cmd_client(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if not args:
        return _wrong_args("client")
    sub = args[0].lower()
    if sub == "setname" and len(args) == 2:
        session.name = args[1] or None
        return Status("OK")
    if sub == "getname":
        return session.name
    if sub == "id":
        return session.client_id
    if sub == "setinfo" and len(args) == 3:
        return Status("OK")
    if sub == "info":
        return "id=%d addr=%s name=%s db=%d resp=%d\n" % (
            session.client_id, session.peer, session.name or "", session.db, session.protocol)
    return Error("ERR unknown subcommand '%s'. Try CLIENT HELP." % args[0])


def _config_values(node: Node) -> dict[str, str]:
    return {"replica-priority": str(node.priority), "slave-priority": str(node.priority),
            "repl-timeout": str(int(REPL_TIMEOUT)), "repl-ping-replica-period": str(node.ping_period),
            "repl-diskless-sync-delay": "%g" % node.sync_delay, "port": str(node.port), "bind": node.host}


def _cmd_config(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if not args:
        return _wrong_args("config")
    sub = args[0].lower()
    if sub == "get" and len(args) >= 2:
        values = _config_values(node)
        out: dict[str, str] = {}
        for pattern in args[1:]:
            for k, v in values.items():
                if fnmatch.fnmatchcase(k, pattern.lower()):
                    out[k] = v
        return out
    if sub == "set" and len(args) == 3:
        if args[1].lower() in ("replica-priority", "slave-priority"):
            try:
                node.priority = int(args[2])
            except ValueError:
                return Error("ERR CONFIG SET failed (possibly related to argument '%s') - argument "
                             "couldn't be parsed into an integer" % args[1])
            return Status("OK")
        if args[1].lower() in ("repl-ping-replica-period", "repl-ping-slave-period", "repl-diskless-sync-delay"):
            try:
                value = int(args[2])
                if args[1].lower() != "repl-diskless-sync-delay":  # Redis 7 takes the old name as an alias
                    world.set_replication(node.addr, ping_period=value)
                else:
                    world.set_replication(node.addr, sync_delay=value)
            except ValueError:
                return Error("ERR CONFIG SET failed (possibly related to argument '%s') - argument "
                             "couldn't be parsed into an integer" % args[1])
            return Status("OK")
        return Error("ERR Unknown option or number of arguments for CONFIG SET - '%s'" % args[1])
    if sub == "rewrite" and len(args) == 1:
        return Status("OK") if node.config_file else Error("ERR The server is running without a config file")
    return Error("ERR unknown subcommand '%s'. Try CONFIG HELP." % args[0])


def _cmd_slaveof(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) != 2:
        return _wrong_args("slaveof")
    if args[0].lower() == "no" and args[1].lower() == "one":
        return Status(world.slaveof(node.addr, None))
    try:
        port = int(args[1])
    except ValueError:
        return Error("ERR value is not an integer or out of range")
    return Status(world.slaveof(node.addr, "%s:%d" % (args[0], port)))


def _cmd_role(world: World, node: Node, session: Session, args: list[str]) -> Any:
    world.refresh(node)
    if node.master is None:
        replicas = [[r.host, str(r.port), str(r.offset)] for r in world.replicas_of(node.addr)
                    if r.link_up]
        return ["master", node.offset, replicas]
    host, port = node.master.rsplit(":", 1)
    # As Redis 7 names them: a full sync waiting out the master's diskless delay is still in the handshake (the
    # master has not answered PSYNC yet); only the transfer is "sync".
    state = ("connected" if node.link_up else "sync" if node.syncing
             else "handshake" if node.full_sync_since is not None else "connect")
    return ["slave", host, int(port), state, node.offset if node.link_up else -1]


def _cmd_set(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) < 2:
        return _wrong_args("set")
    if node.master is not None:
        return READONLY
    world._append(node, args[0], args[1].encode())
    world._sync_from(node)
    return Status("OK")


def _cmd_get(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if len(args) != 1:
        return _wrong_args("get")
    for w in reversed(node.log):
        if w.key == args[0]:
            return w.value
    return None


def _cmd_dbsize(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return len(node.keys)


def _cmd_command(world: World, node: Node, session: Session, args: list[str]) -> Any:
    return []


def _cmd_slotsinfo(world: World, node: Node, session: Session, args: list[str]) -> Any:
    if not node.codis_server:
        return Error("ERR unknown command 'SLOTSINFO', with args beginning with: ")
    return []  # no keys in any slot that the simulator tracks


def _cmd_info(world: World, node: Node, session: Session, args: list[str]) -> Any:
    world.refresh(node)
    return render_info(world, node, [a.lower() for a in args])


_COMMANDS: dict[str, Callable[[World, Node, Session, list[str]], Any]] = {
    "ping": _cmd_ping, "echo": _cmd_echo, "quit": _cmd_quit, "select": _cmd_select,
    "client": _cmd_client, "config": _cmd_config, "slaveof": _cmd_slaveof, "replicaof": _cmd_slaveof,
    "role": _cmd_role, "info": _cmd_info, "set": _cmd_set, "get": _cmd_get, "dbsize": _cmd_dbsize,
    "command": _cmd_command, "slotsinfo": _cmd_slotsinfo,
    "auth": lambda w, n, s, a: _auth(n, s, a),
    "hello": _hello,
}


Reply = Union[Status, Error, str, int, list, dict, None]
