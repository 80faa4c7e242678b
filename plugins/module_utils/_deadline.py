# -*- coding: utf-8 -*-
# Copyright (c) codis.ha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One deadline for the whole pass, which every wait below it (a dashboard request, a verification) shares.

A per-request or per-read timeout alone lets a dashboard that trickles its reply, or a string of slow calls,
keep the pass (and the pass lock) for as long as it likes.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional


class Deadline:
    def __init__(self, seconds: Optional[float], clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = math.inf if seconds is None else clock() + seconds

    def remaining(self) -> float:
        return max(self._ends - self._clock(), 0.0)

    @property
    def expired(self) -> bool:
        return self._clock() >= self._ends

    def cap(self, seconds: float) -> float:
        """`seconds`, or less if the pass ends sooner."""
        return min(seconds, self.remaining())


NO_DEADLINE = Deadline(None)
