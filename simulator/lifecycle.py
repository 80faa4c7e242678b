"""What both clusters (fake nodes, real redis-server processes) share: `with X.start(...) as x:` (built,
yielded, always closed) and reading the groups as their dashboard stores them."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, TypeVar

T = TypeVar("T", bound="Closing")


class Closing:
    def close(self) -> None:
        raise NotImplementedError

    def add_group(self, gid: int, slaves: int) -> list[str]:
        raise NotImplementedError

    def _add_groups_or_close(self, groups: int, slaves: int) -> None:
        """Groups 1..N; a failure half way closes what was started, so no process or socket is left behind."""
        try:
            for gid in range(1, groups + 1):
                self.add_group(gid, slaves)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ what the dashboard says
    dashboard: Any

    @property
    def dashboard_url(self) -> str:
        return str(self.dashboard.url)

    def group_ids(self) -> list[int]:
        return list(self.dashboard.group_ids())

    def servers(self, gid: int) -> dict[str, str]:
        """addr -> type, as the dashboard stores it."""
        return dict(self.dashboard.servers(gid))

    def masters(self) -> dict[int, list[str]]:
        """Group id -> the addresses the dashboard calls master (more than one is a bug)."""
        return dict(self.dashboard.masters())

    def master_of(self, gid: int) -> Optional[str]:
        masters = self.masters().get(gid, [])
        return masters[0] if len(masters) == 1 else None

    def slaves_of(self, gid: int) -> list[str]:
        return sorted(a for a, t in self.servers(gid).items() if t == "slave")

    @classmethod
    @contextlib.contextmanager
    def start(cls: type[T], **kwargs: Any) -> Iterator[T]:
        started = cls(**kwargs)
        try:
            yield started
        finally:
            started.close()
