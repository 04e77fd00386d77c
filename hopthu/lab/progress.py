"""Progress lines: one per step per host, with how long the step took.

Steps of different hosts run in parallel threads, so each line is printed
whole, under a lock, when its step ends. A long step (an image build) also
announces itself when it starts, so nobody wonders whether the lab hangs.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Outcome:
    """What a step reports on success; set `text` inside the `with` block."""

    text: str = "done"


class Progress:
    def __init__(self, out: TextIO | None = None, *, quiet: bool = False) -> None:
        self._out = out if out is not None else sys.stdout
        self._quiet = quiet
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def line(self, subject: str, text: str) -> None:
        if self._quiet:
            return
        elapsed = time.monotonic() - self._start
        with self._lock:
            print(f"{elapsed:6.1f}s  {subject:<8} {text}", file=self._out, flush=True)

    @contextlib.contextmanager
    def step(self, subject: str, what: str, *, announce: str = "") -> Iterator[Outcome]:
        """Time one step; print its outcome, or FAILED and the reason."""
        if announce:
            self.line(subject, f"{what}: {announce}")
        outcome = Outcome()
        began = time.monotonic()
        try:
            yield outcome
        except BaseException as exc:
            first_line = (str(exc) or type(exc).__name__).splitlines()[0]
            self.line(subject, f"{what}: FAILED ({time.monotonic() - began:.1f}s): {first_line}")
            raise
        self.line(subject, f"{what}: {outcome.text} ({time.monotonic() - began:.1f}s)")
