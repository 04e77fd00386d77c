"""Which code a run used: the git commit of the checkout.

`hopthu audit` prints it in the report's header, and tests/conftest.py
records it in every JUnit file as the testsuite property ``commit``, so the
report can say which code each run of evidence came from.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hopthu import ROOT

NOT_IN_GIT = "(not in git)"


def commit(root: Path = ROOT) -> str:
    """HEAD's short hash, with "+changes" when tracked files differ from it."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=False)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return NOT_IN_GIT
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return NOT_IN_GIT
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
