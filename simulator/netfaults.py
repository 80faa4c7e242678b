"""Network faults on loopback with iptables, for the end-to-end tests and the benchmarks: a host that sends nothing
(every packet to its port dropped, no reset), and one observer cut off from some ports (an OUTPUT rule with an
owner match on a group id of its own, so the observer can run as root and read a checkout anywhere). Rules touch
loopback only and are removed whatever happens."""
from __future__ import annotations

import contextlib
import grp
import subprocess
from typing import Iterator, Optional


def group_id(name: str) -> int:
    """A dedicated group for one observer's sockets, made once by name."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        # Two test processes may race to make it: whoever loses finds it made.
        subprocess.run(["groupadd", "--system", name], check=False, capture_output=True)
        return grp.getgrnam(name).gr_gid


@contextlib.contextmanager
def dropped(ports: list[int], gid: Optional[int] = None) -> Iterator[None]:
    """Packets to these loopback ports dropped: from everyone (INPUT: the host froze or lost power), or only from
    the processes whose sockets carry `gid` (OUTPUT: that observer is cut off)."""
    if gid is None:
        rules = [["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(p), "-j", "DROP"] for p in ports]
    else:
        rules = [["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", str(p), "-m", "owner", "--gid-owner", str(gid),
                  "-j", "DROP"] for p in ports]
    added = []
    try:
        for rule in rules:
            subprocess.run(["iptables", "-w", "-I"] + rule, check=True)
            added.append(rule)
        yield
    finally:
        for rule in added:
            subprocess.run(["iptables", "-w", "-D"] + rule, check=True)
