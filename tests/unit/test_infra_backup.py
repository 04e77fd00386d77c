"""tests/infra/test_backup.py's judgement of a store's backups, on made-up state files."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.infra.test_backup import backup_problem

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def state(result: str, last_success: str | None, message: str = "") -> dict[str, object]:
    return {"result": result, "finished_at": "2026-11-30T01:10:00Z", "message": message,
            "last_success_at": last_success, "last_success_archive": "mail1-2026-11-29T010203Z"}


@pytest.mark.control("ART11-7-BACKUP")
@pytest.mark.parametrize(("last", "since", "expected"), [
    (state("ok", "2026-11-30T01:10:00Z"), None, None),
    (state("warning", "2026-11-29T12:30:00Z"), None, None),
    (state("ok", "2026-11-29T09:00:00Z"), None, "is 27.0 hours old, more than"),
    (None, "2026-11-30T08:00:00Z", None),
    (None, "2026-11-28T08:00:00Z", "has not backed up once in the 52.0 hours"),
    (None, None, "has never backed up"),
    (state("failed", "2026-11-30T01:00:00Z",
           "wrong passphrase: /etc/hopthu/backup/passphrase does not open the key"), None,
     "the last backup of mail1 failed at 2026-11-30T01:10:00Z: wrong passphrase"),
])
def test_a_store_fails_the_check_when_its_last_good_backup_is_too_old_or_its_last_run_failed(
    last: dict[str, object] | None, since: str | None, expected: str | None,
) -> None:
    problem = backup_problem(last, since, NOW, 26, "mail1")
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem
        assert "hopthu backup now --host mail1" in problem or "deploy" in problem
