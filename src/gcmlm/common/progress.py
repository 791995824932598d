"""Progress for long loops: a line every few seconds on stderr, readable in cluster logs too."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("gcmlm")


class Progress:
    """Counts work items and logs rate and ETA at most every ``every`` seconds."""

    def __init__(self, total: int | None, what: str, unit: str = "items", every: float = 5.0):
        self.total, self.what, self.unit, self.every = total, what, unit, every
        self.done = 0
        self.start = self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            log.info("%s: %s", self.what, self.status(now))

    def status(self, now: float | None = None) -> str:
        elapsed = (now or time.perf_counter()) - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.done}" + (f"/{self.total}" if self.total else "") + f" {self.unit}, {rate:.1f} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {(self.total - self.done) / rate:.0f} s"
        return text

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def close(self) -> None:
        log.info("%s: done, %s in %.1f s", self.what, self.status(), self.elapsed)


def track(items: Iterable[T], what: str, total: int | None = None, unit: str = "items") -> Iterator[T]:
    """Iterate ``items`` and log progress."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    progress = Progress(total, what, unit)
    for item in items:
        yield item
        progress.update()
    progress.close()
