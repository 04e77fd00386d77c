"""The one exception the lab raises: a failure explained for a human."""

from __future__ import annotations


class LabError(RuntimeError):
    """Something the lab could not do.

    The message says what failed and what to do next. ``exit_code`` is what
    `hopthu lab` exits with: 1 for a failure while doing the work, 2 when the
    request itself cannot be carried out as asked (not root, a missing
    command, an unknown host, a clone of another suite).
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
