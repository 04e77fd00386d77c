"""Whether a store's last backup is good and recent: one rule, two readers (Art. 11.7).

The infra suite (tests/infra/test_backup.py, `hopthu verify`) and
`hopthu status` (hopthu/status_checks.py) judge a store's backups by this
function alone, from what the backup tool leaves on the host:

- ``last.json``, the last run of ``hopthu-backup create`` (its result, and the
  time and archive of the last good backup, which a failed run keeps);
- ``enabled-since``, when the deploy turned backups on: until the first good
  backup, the age counts from there.

The verdict:

- the last run failed: fail, with the tool's own message;
- the last good backup (or, before the first, the enabling) is older than
  ``backup__max_age_hours``: fail;
- the last run made an archive with borg warnings: warn (the infra suite
  passes it; files that changed while they were read are saved again next
  time);
- otherwise ok.

Which hosts are asked stays with each reader: the infra suite asks the
stores (``backup__client_enabled``), `hopthu status` every host that keeps
the state. The monitor's alert BackupTooOld applies the age half of the
rule to the metric the tool writes (roles/node_exporter/README.md,
"Backups").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Where the backup tool (roles/backup) records its last run, and when the
#: deploy enabled backups on the host.
STATE = "/var/lib/hopthu/backup/last.json"
ENABLED_SINCE = "/var/lib/hopthu/backup/enabled-since"
#: backup__max_age_hours' default (roles/backup/defaults/main.yml).
MAX_AGE_HOURS = 26

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Verdict:
    """How a store's backups stand: ok, warn or fail, in words, and what to do."""

    state: str
    message: str
    #: What the operator does next; empty when all is fine.
    fix: str = ""
    #: Hours since the last good backup (or since backups were enabled); None
    #: when no time could be read.
    age_hours: float | None = None

    @property
    def failed(self) -> bool:
        return self.state == FAIL


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time as the tool writes it; without a zone it is UTC."""
    moment = dt.datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _on(host: str, command: str) -> str:
    return f"`{command}` on {host}"


def judge(state: Mapping[str, Any] | None, enabled_since: str | None, now: dt.datetime,
          max_age_hours: float, host: str) -> Verdict:
    """The verdict on `host`'s backups.

    `state` is last.json (None: no run yet), `enabled_since` the text of the
    enabled-since file (None: absent), `now` the host's own clock.
    """
    run = _on(host, "systemctl start hopthu-backup.service")
    logs = _on(host, "journalctl -u hopthu-backup.service -n 50")
    if state and state.get("result") == "failed":
        return Verdict(FAIL, f"The last backup failed at {state.get('finished_at')} "
                       f"({state.get('message')})", f"fix what it says, then run one: {run}")
    last_good = (state or {}).get("last_success_at")
    since = last_good or enabled_since
    if not since:
        return Verdict(FAIL, "No backup has run and the host does not say when backups were "
                       f"enabled ({ENABLED_SINCE})",
                       "deploy the backup role to it (it writes that file and the timer)")
    try:
        start = parse_time(str(since))
    except ValueError:
        return Verdict(FAIL, f"The backup state gives no readable time ({since!r})",
                       f"read {logs} and run a backup: {run}")
    age = (now - start).total_seconds() / 3600
    archive = (state or {}).get("last_success_archive")
    if age > max_age_hours:
        what = (f"The last good backup ({archive}) is {age:.1f} hours old" if last_good else
                f"No backup has succeeded in the {age:.1f} hours since backups were enabled")
        return Verdict(FAIL, f"{what}, more than {max_age_hours:g} hours (backup__max_age_hours)",
                       "check the timer with "
                       f"{_on(host, 'systemctl status hopthu-backup.timer hopthu-backup.service')}"
                       f", read {logs}, then run one: {run}", age)
    if not last_good:
        return Verdict(OK, f"No backup yet: backups were enabled {age:.1f} hours ago, and the "
                       f"first is due within {max_age_hours:g} hours", age_hours=age)
    if state and state.get("result") == "warning":
        return Verdict(WARN, f"The last backup ({archive}, {age:.1f} hours old) finished with "
                       "warnings: " + "; ".join(map(str, state.get("warnings") or []))[:300],
                       f"read them in {logs}; files that changed while they were read are "
                       "saved again by the next backup", age)
    return Verdict(OK, f"The last good backup ({archive}) is {age:.1f} hours old; the limit is "
                   f"{max_age_hours:g} hours", age_hours=age)
