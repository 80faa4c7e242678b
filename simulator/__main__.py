"""CLI: `python -m simulator up ...` runs a cluster; the other verbs drive a running one."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from typing import Any, Optional

DEFAULT_CONTROL = os.environ.get("CODIS_SIM_CONTROL", "http://127.0.0.1:18088")


def _up_real(args: argparse.Namespace) -> int:
    """Real redis-server processes behind the dashboard; faults are plain signals to the printed PIDs."""
    import threading

    from .real import RealCluster

    stop = threading.Event()
    with RealCluster.start(groups=args.groups, slaves=args.slaves, password=args.password,
                           dashboard_port=args.port) as cluster:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print("dashboard: %s" % cluster.dashboard_url)
        for gid in sorted(cluster.masters()):
            shown = ["%s(%s, pid %d)" % (a, t, cluster.processes[a].proc.pid)
                     for a, t in sorted(cluster.servers(gid).items())]
            print("group %d: %s" % (gid, " ".join(shown)))
        if args.state_file:
            with open(args.state_file, "w", encoding="utf-8") as f:
                json.dump({"dashboard": cluster.dashboard_url,
                           "pids": {a: s.proc.pid for a, s in cluster.processes.items()}}, f)
        sys.stdout.flush()
        stop.wait()
    print("stopped")
    return 0


def _up(args: argparse.Namespace) -> int:
    from .cluster import Cluster
    from .control import ControlServer

    if args.real:
        return _up_real(args)

    with Cluster.start(groups=args.groups, slaves=args.slaves, password=args.password, seed=args.seed,
                       dashboard_port=args.port, codis=args.codis, product_name=args.product_name) as cluster:
        control = ControlServer(cluster, port=args.control_port if args.control_port is not None
                                else (args.port + 1 if args.port else 0))
        stop = control.stop_requested
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print("dashboard: %s (Codis %d.x, product %s)" % (cluster.dashboard_url, args.codis, args.product_name))
        print("control:   %s" % control.url)
        for gid in cluster.group_ids():
            servers = cluster.servers(gid)
            print("group %d: %s" % (gid, " ".join("%s(%s)" % (a, t) for a, t in sorted(servers.items()))))
        if args.state_file:
            with open(args.state_file, "w", encoding="utf-8") as f:
                json.dump({"dashboard": cluster.dashboard_url, "control": control.url}, f)
        sys.stdout.flush()
        try:
            stop.wait()
        finally:
            control.close()
    print("stopped")
    return 0


def _call(control: str, op: str, **kwargs: Any) -> Any:
    body = json.dumps({"op": op, **{k: v for k, v in kwargs.items() if v is not None}}).encode()
    request = urllib.request.Request(control.rstrip("/") + "/op", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def _brief(s: dict[str, Any]) -> str:
    if "alive" not in s:
        return "(not a simulated node)"
    if not s["alive"]:
        return "DEAD"
    role = "role master" if s["role"] == "master" else "slave of %s (link %s)" % (
        s["master"], "up" if s["link_up"] else "down")
    return "%s, offset %d, %d keys%s" % (role, s["offset"], s["keys"], ", HUNG" if s["hung"] else "")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up", help="start a simulated cluster and run until interrupted")
    up.add_argument("--groups", type=int, default=3)
    up.add_argument("--slaves", type=int, default=2)
    up.add_argument("--port", type=int, default=18087, help="dashboard port (0: any free port)")
    up.add_argument("--control-port", type=int, default=None, help="default: dashboard port + 1")
    up.add_argument("--password", default=None)
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--state-file", default=None, help="write the URLs here as JSON once started")
    up.add_argument("--codis", type=int, choices=[2, 3], default=2,
                    help="2: codis-config dashboard (default); 3: codis-dashboard, the topom API")
    up.add_argument("--product-name", default="codis-demo", help="Codis 3: the xauth token is derived from it")
    up.add_argument("--real", action="store_true",
                    help="start real redis-server processes instead of fake nodes (no control API: kill -9 or "
                         "kill -STOP the printed PIDs)")
    for verb in ("kill", "hang", "revive", "heal", "cut"):
        p = sub.add_parser(verb, help="%s a node" % verb)
        p.add_argument("addr")
    p = sub.add_parser("partition", help="cut this tool's side off from a node")
    p.add_argument("addr")
    p.add_argument("--mode", choices=("hang", "refuse"), default="hang")
    p = sub.add_parser("write", help="write through a group's dashboard master")
    p.add_argument("group", type=int)
    p.add_argument("--count", type=int, default=1)
    p = sub.add_parser("fault", help="dashboard fault: down garbage truncated slow_ms "
                                     "promote_500_after_commit lock_conflict")
    p.add_argument("name")
    p.add_argument("value", nargs="?", default="true")
    sub.add_parser("clear", help="clear every dashboard fault")
    p = sub.add_parser("status", help="print the cluster's true state as JSON")
    p.add_argument("--brief", action="store_true", help="one line per server instead of JSON")
    sub.add_parser("stop", help="stop the running simulator")
    for p in sub.choices.values():
        if p is not up:
            p.add_argument("--control", default=DEFAULT_CONTROL)
    args = parser.parse_args(argv)
    if args.verb == "up":
        return _up(args)
    kwargs = {k: v for k, v in vars(args).items() if k not in ("verb", "control", "brief")}
    try:
        answer = _call(args.control, args.verb, **kwargs)
    except (urllib.error.URLError, OSError) as exc:
        print("cannot reach the simulator at %s: %s" % (args.control, exc), file=sys.stderr)
        return 2
    if not answer.get("ok"):
        print("error: %s" % answer.get("error"), file=sys.stderr)
        return 1
    result = answer.get("result")
    if getattr(args, "brief", False):
        for gid, servers in sorted(result["groups"].items(), key=lambda kv: int(kv[0])):
            for addr, s in servers.items():
                print("group %s  %-21s %-8s %s" % (gid, addr, s["type"], _brief(s)))
        return 0
    print(json.dumps(result, indent=2) if isinstance(result, (dict, list)) else "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
