"""What is wrong with a set of settings, said so an operator can fix it.

Every problem names the file, the key (with the path inside a nested value),
the value and the allowed form (STYLE.md habit 9). All problems of a run are
collected and raised together as one `SettingsError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any


class _Nothing:
    """The value of a key that has none (it is missing)."""

    def __repr__(self) -> str:
        return "<nothing>"


NOTHING: Any = _Nothing()


def shorten(value: Any, limit: int = 160) -> str:
    """A value as the operator wrote it: YAML's null, true and false, else Python's repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...'"


@dataclass(frozen=True)
class SettingsIssue:
    """One problem: where it is, what is wrong, what is allowed."""

    #: The file to fix, relative to the project root when inside it; "" when
    #: no file is to blame.
    file: str
    #: The variable, with the path inside a nested value
    #: (`common__firewall_group_services.mail_mx.internet[1]`); "" for a
    #: problem with a whole file.
    key: str
    #: The bad value as loaded or resolved; NOTHING when there is none.
    value: Any
    #: What is wrong.
    message: str
    #: What is allowed instead ("" when the message says it all).
    allowed: str = ""
    #: The line in `file` (1-based) where the key is set, when known.
    line: int | None = None
    #: The hosts this applies to ("" for all hosts of the report).
    hosts: tuple[str, ...] = field(default=(), compare=False)

    @property
    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or "(no file)"

    def __str__(self) -> str:
        head = self.where
        if self.key:
            head += f": {self.key}"
        if self.value is not NOTHING:
            head += f" = {shorten(self.value)}"
        lines = [head, f"    {self.message}"]
        if self.allowed:
            lines.append(f"    allowed: {self.allowed}")
        if self.hosts:
            lines.append(f"    hosts: {', '.join(self.hosts)}")
        return "\n".join(lines)


class SettingsError(ValueError):
    """Settings that must not reach a host. `errors` lists every problem found.

    A problem of several hosts is listed once, with its hosts; when it
    concerns every host of `all_hosts`, without them.
    """

    def __init__(
        self,
        errors: Iterable[SettingsIssue],
        title: str = "settings are invalid",
        all_hosts: Iterable[str] = (),
    ):
        everyone = set(all_hosts)
        self.errors: list[SettingsIssue] = [
            replace(issue, hosts=()) if everyone and set(issue.hosts) == everyone else issue
            for issue in merge_hosts(errors)
        ]
        self.title = title
        super().__init__(self.report())

    def report(self) -> str:
        count = len(self.errors)
        noun = "problem" if count == 1 else "problems"
        body = "\n\n".join(str(issue) for issue in self.errors)
        return f"{self.title}: {count} {noun}\n\n{body}"

    def __str__(self) -> str:
        return self.report()


def merge_hosts(issues: Iterable[SettingsIssue]) -> list[SettingsIssue]:
    """Report a problem shared by several hosts once, with the hosts listed."""
    merged: dict[tuple[Any, ...], SettingsIssue] = {}
    for issue in issues:
        key = (issue.file, issue.line, issue.key, shorten(issue.value), issue.message)
        seen = merged.get(key)
        if seen is None:
            merged[key] = issue
        else:
            hosts = seen.hosts + tuple(h for h in issue.hosts if h not in seen.hosts)
            merged[key] = replace(seen, hosts=hosts)
    return sorted(merged.values(), key=lambda i: (i.file, i.line or 0, i.key, i.message))
