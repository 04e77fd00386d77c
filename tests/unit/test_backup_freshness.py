"""Whether a store's last backup is good and recent: one rule for two readers (ART11-7-BACKUP).

hopthu/backup/freshness.py judges made-up state files here; then the infra
suite's check (tests/infra/test_backup.py, against a stand-in host) and
`hopthu status` (hopthu/status_checks.py) are shown to reach the same
verdict on the same files, because both ask that one function.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest

from hopthu import status_checks
from hopthu.audit.hosts import Target
from hopthu.backup import freshness
from tests.infra import test_backup as infra

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
ARCHIVE = "mail1-2026-11-29T010203Z"


def state(result: str, last_success: str | None, message: str = "",
          warnings: list[str] | None = None) -> dict[str, Any]:
    return {"result": result, "finished_at": "2026-11-30T01:10:00Z", "message": message,
            "last_success_at": last_success, "last_success_archive": ARCHIVE,
            "warnings": warnings or []}


#: (last.json, enabled-since, verdict, what its message says, what its advice says)
CASES = {
    "recent-success": (state("ok", "2026-11-30T01:10:00Z"), None, freshness.OK,
                       f"The last good backup ({ARCHIVE}) is 10.8 hours old; the limit is 26",
                       ""),
    "recent-with-borg-warnings": (
        state("warning", "2026-11-29T12:30:00Z", warnings=["file changed while we backed it up"]),
        None, freshness.WARN, "finished with warnings: file changed while we backed it up",
        "saved again by the next backup"),
    "success-too-old": (state("ok", "2026-11-29T09:00:00Z"), None, freshness.FAIL,
                        f"The last good backup ({ARCHIVE}) is 27.0 hours old, more than 26 hours",
                        "`systemctl status hopthu-backup.timer hopthu-backup.service` on mail1"),
    "none-yet-within-the-limit": (None, "2026-11-30T08:00:00Z", freshness.OK,
                                  "No backup yet: backups were enabled 4.0 hours ago", ""),
    "none-since-too-long": (
        None, "2026-11-28T08:00:00Z", freshness.FAIL,
        "No backup has succeeded in the 52.0 hours since backups were enabled",
        "`systemctl start hopthu-backup.service` on mail1"),
    "never-enabled": (None, None, freshness.FAIL, "does not say when backups were enabled",
                      "deploy the backup role"),
    "last-run-failed": (
        state("failed", "2026-11-30T01:00:00Z",
              "wrong passphrase: /etc/hopthu/backup/passphrase does not open the key"), None,
        freshness.FAIL, "The last backup failed at 2026-11-30T01:10:00Z (wrong passphrase",
        "fix what it says, then run one: `systemctl start hopthu-backup.service` on mail1"),
    "unreadable-time": (state("ok", "last tuesday"), None, freshness.FAIL,
                        "gives no readable time ('last tuesday')",
                        "`journalctl -u hopthu-backup.service -n 50` on mail1"),
}


@pytest.mark.control("ART11-7-BACKUP")
@pytest.mark.parametrize("case", list(CASES))
def test_a_store_fails_when_its_last_run_failed_or_its_last_good_backup_is_too_old(
    case: str,
) -> None:
    last, since, expected, says, advice = CASES[case]
    verdict = freshness.judge(last, since, NOW, 26, "mail1")
    assert verdict.state == expected, verdict
    assert says in verdict.message, verdict.message
    assert advice in verdict.fix, verdict.fix
    assert bool(verdict.fix) == (expected != freshness.OK), (
        "a verdict that is not fine says what to do, and a fine one says nothing")


def test_the_age_limit_is_backup__max_age_hours() -> None:
    last = state("ok", "2026-11-28T12:00:00Z")
    assert freshness.judge(last, None, NOW, 26, "mail1").failed
    assert not freshness.judge(last, None, NOW, 72, "mail1").failed


# --- Both readers ask this rule -----------------------------------------------------------


@dataclass
class Ran:
    rc: int
    stdout: str


class StandInStore:
    """A store host as testinfra shows it, with the backup tool's files and a clock."""

    def __init__(self, last: dict[str, Any] | None, since: str | None) -> None:
        self.files = {freshness.STATE: None if last is None else json.dumps(last),
                      freshness.ENABLED_SINCE: since}

    def run(self, command: str) -> Ran:
        path = command.removeprefix("cat ").strip("'")
        text = self.files.get(path)
        return Ran(1, "") if text is None else Ran(0, text + "\n")

    def check_output(self, command: str) -> str:
        assert command == "date -u +%s", command
        return str(int(NOW.timestamp()))


def infra_verdict(last: dict[str, Any] | None, since: str | None) -> str | None:
    """The infra check's failure message on a stand-in store; None when it passes."""
    try:
        infra.test_the_last_backup_of_the_store_succeeded_and_is_recent(
            StandInStore(last, since), "mail1",
            {"backup__client_enabled": True, "backup__max_age_hours": 26})
    except AssertionError as exc:
        return str(exc)
    return None


def status_check(last: dict[str, Any] | None, since: str | None) -> status_checks.Check:
    plan = status_checks.Plan(target=Target("mail1", "198.18.0.10", ("mail_store",)),
                              inventory="lab", backup_max_age_hours=26)
    return status_checks._backup(plan, {"backup": {"last": last, "enabled_since": since}}, NOW)


@pytest.mark.control("ART11-7-BACKUP")
@pytest.mark.parametrize("case", [c for c in CASES if c != "never-enabled"])
def test_the_infra_check_and_hopthu_status_judge_a_store_alike(case: str) -> None:
    last, since, expected, _says, _advice = CASES[case]
    verdict = freshness.judge(last, since, NOW, 26, "mail1")
    failure = infra_verdict(last, since)
    check = status_check(last, since)
    assert (check.state, check.message, check.fix) == (expected, verdict.message, verdict.fix)
    if expected == freshness.FAIL:
        said = f"mail1: {verdict.message} — what to do: {verdict.fix}"
        # pytest's assertion rewriting adds its explanation below the message.
        assert failure is not None and failure.split("\n", 1)[0] == said, failure
    else:
        assert failure is None, failure


def test_a_host_without_backups_is_a_failure_for_the_infra_check_but_not_checked_by_status(
) -> None:
    # The infra check asks only the stores (backup__client_enabled), where the
    # tool's files must exist; `hopthu status` asks every host and skips one
    # without them (client1, backup1).
    assert infra_verdict(None, None) is not None
    assert status_check(None, None).state == status_checks.SKIP
