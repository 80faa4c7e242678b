"""`with X.start(...) as x:` for everything the simulator starts: built, yielded, always closed."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, TypeVar

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

    @classmethod
    @contextlib.contextmanager
    def start(cls: type[T], **kwargs: Any) -> Iterator[T]:
        started = cls(**kwargs)
        try:
            yield started
        finally:
            started.close()
