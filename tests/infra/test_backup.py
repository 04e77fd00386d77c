"""Backups (Art. 11.7): every store has a recent good backup; history cannot be removed.

Read-only. On each store host: the last run of hopthu-backup (its state file,
/var/lib/hopthu/backup/last.json) succeeded, and the last good backup is
younger than backup__max_age_hours (until the first backup, the time since
backups were enabled there counts); the timer that runs it is on; the key
and passphrase are the host's alone. On the backup host: every store's key
can only append to its own repository (the forced command and `restrict`),
every store has its repository, the retention and the drills are scheduled,
and neither their last run failed.

Ages are measured with the host's own clock. That a backup really restores,
that a changed byte fails a drill and that a store cannot delete history is
tests/lab/test_backup.py.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from typing import Any

import pytest

STATE_DIR = "/var/lib/hopthu/backup"
LAST = f"{STATE_DIR}/last.json"
ENABLED_SINCE = f"{STATE_DIR}/enabled-since"
AUTHORIZED_KEYS = "/srv/borg/.ssh/authorized_keys"
FORCED = 'restrict,command="borg serve --append-only --restrict-to-repository /srv/borg/{name}'


def parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def backup_problem(state: dict[str, Any] | None, enabled_since: str | None, now: dt.datetime,
                   max_age_hours: int, host: str) -> str | None:
    """What is wrong with a store's backups, in words for the operator; None when fine.

    `state` is last.json (None: no run yet), `enabled_since` the time the
    deploy turned backups on.
    """
    run = f"`hopthu backup now --host {host}`, or on {host}: systemctl start hopthu-backup"
    if state and state.get("result") == "failed":
        return (f"the last backup of {host} failed at {state.get('finished_at')}: "
                f"{state.get('message')}. Fix what it says, then {run}.")
    last_good = (state or {}).get("last_success_at")
    since = last_good or enabled_since
    if not since:
        return (f"{host} has never backed up and does not say when backups were enabled "
                f"({ENABLED_SINCE}): deploy the backup role to it.")
    age = (now - parse_time(since)).total_seconds() / 3600
    if age > max_age_hours:
        what = (f"the last good backup of {host} ({state.get('last_success_archive')}) is "
                f"{age:.1f} hours old" if last_good else
                f"{host} has not backed up once in the {age:.1f} hours since backups were enabled")
        return (f"{what}, more than backup__max_age_hours = {max_age_hours}. Check "
                f"`systemctl status hopthu-backup.timer hopthu-backup.service` and "
                f"`journalctl -u hopthu-backup` on {host}, then {run}.")
    return None


def read_json(host: Any, path: str) -> dict[str, Any] | None:
    result = host.run(f"cat {shlex.quote(path)}")
    if result.rc != 0:
        return None
    return json.loads(result.stdout)


def host_now(host: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(host.check_output("date -u +%s")), tz=dt.UTC)


def timer_state(host: Any, unit: str) -> tuple[str, str]:
    enabled = host.run(f"systemctl is-enabled {unit}").stdout.strip() or "unknown"
    active = host.run(f"systemctl is-active {unit}").stdout.strip() or "unknown"
    return enabled, active


# --- The stores ---------------------------------------------------------------------------------


@pytest.mark.control("ART11-7-BACKUP")
def test_the_last_backup_of_the_store_succeeded_and_is_recent(
    store_host: Any, hostname: str, settings: dict[str, Any],
) -> None:
    if not settings.get("backup__client_enabled"):
        pytest.skip("backup__client_enabled is false for this host")
    state = read_json(store_host, LAST)
    since = store_host.run(f"cat {ENABLED_SINCE}")
    problem = backup_problem(state, since.stdout.strip() if since.rc == 0 else None,
                             host_now(store_host), int(settings["backup__max_age_hours"]),
                             hostname)
    assert problem is None, problem


@pytest.mark.control("ART11-7-BACKUP")
def test_the_store_backs_up_on_its_schedule(store_host: Any, settings: dict[str, Any]) -> None:
    if not settings.get("backup__client_enabled"):
        pytest.skip("backup__client_enabled is false for this host")
    enabled, active = timer_state(store_host, "hopthu-backup.timer")
    assert (enabled, active) == ("enabled", "active"), (
        f"hopthu-backup.timer is {enabled} and {active}: no backup runs by itself. Deploy "
        "the backup role (it enables and starts the timer).")
    calendar = store_host.check_output(
        "systemctl show -p TimersCalendar --value hopthu-backup.timer")
    wanted = store_host.check_output(
        f"systemd-analyze calendar {shlex.quote(settings['backup__schedule'])}")
    normalized = next((line.split(":", 1)[1].strip() for line in wanted.splitlines()
                       if line.strip().startswith("Normalized form:")), None)
    assert normalized and f"OnCalendar={normalized} " in calendar, (
        f"hopthu-backup.timer runs at {calendar.strip()!r}, not at backup__schedule = "
        f"{settings['backup__schedule']!r} ({normalized}): a drop-in or an old unit "
        "overrides the role's.")


@pytest.mark.control("ART11-7-BACKUP")
def test_the_stores_backup_key_and_passphrase_are_roots_alone(store_host: Any,
                                                              settings: dict[str, Any]) -> None:
    if not settings.get("backup__client_enabled"):
        pytest.skip("backup__client_enabled is false for this host")
    for path in ("/etc/hopthu/backup/id_ed25519", "/etc/hopthu/backup/passphrase"):
        file = store_host.file(path)
        assert file.exists, f"{path} is missing: deploy the backup role to this host"
        assert (file.user, file.mode) == ("root", 0o600), (
            f"{path} is {file.user}:{file.group} {file.mode:04o}: it opens the backups; it must "
            f"be root's alone (0600). Deploy the backup role again.")


# --- The backup host -------------------------------------------------------------------------


@pytest.mark.control("ART11-7-BACKUP")
def test_every_store_key_can_only_append_to_its_own_repository(
    backup_host: Any, settings: dict[str, Any],
) -> None:
    if not settings.get("backup__server_enabled"):
        pytest.skip("backup__server_enabled is false for this host")
    file = backup_host.file(AUTHORIZED_KEYS)
    assert file.exists, f"{AUTHORIZED_KEYS} is missing: deploy the backup role to this host"
    assert file.user == "root" and not file.mode & 0o022, (
        f"{AUTHORIZED_KEYS} is {file.user} {file.mode:04o}: only root may change which keys "
        "reach the repositories.")
    keys = [line for line in file.content_string.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    loose = [line[:80] for line in keys
             if not any(line.startswith((FORCED.format(name=c) + '"',
                                         FORCED.format(name=c) + " --storage-quota "))
                        for c in settings["backup__clients"])]
    assert not loose, (
        f"keys in {AUTHORIZED_KEYS} are not forced to an append-only borg serve of one store's "
        f"repository: {loose}. A store with such a key can delete history; remove them and "
        "deploy the backup role.")
    missing = [c for c in settings["backup__clients"]
               if not any(line.startswith(FORCED.format(name=c)) for line in keys)]
    assert not missing, (
        f"no key of {missing} in {AUTHORIZED_KEYS}: they cannot back up. Deploy them, then this "
        "host (the keys reach it through the controller).")


@pytest.mark.control("ART11-7-BACKUP")
def test_every_store_has_its_encrypted_repository(backup_host: Any,
                                                  settings: dict[str, Any]) -> None:
    if not settings.get("backup__server_enabled"):
        pytest.skip("backup__server_enabled is false for this host")
    problems = []
    for client in settings["backup__clients"]:
        config = backup_host.file(f"/srv/borg/{client}/config")
        if not config.exists:
            problems.append(f"/srv/borg/{client} has no repository")
            continue
        text = config.content_string
        if config.user != "borg":
            problems.append(f"/srv/borg/{client} belongs to {config.user}, not borg")
        if "\nkey = " not in text:
            problems.append(f"/srv/borg/{client} keeps no repokey: it is not encrypted as "
                            "the role makes it (repokey-blake2)")
    assert not problems, "; ".join(problems) + (
        ". Deploy the backup role to this host; a repository that vanished is an incident "
        "(roles/backup/README.md, 'When a repository is lost').")


@pytest.mark.control("ART11-7-BACKUP")
@pytest.mark.control("ART11-7-RESTORE")
@pytest.mark.parametrize(("what", "timer", "state_file"), [
    ("retention", "hopthu-backup-prune.timer", "prune.json"),
    ("drill", "hopthu-backup-drill.timer", "drill.json"),
])
def test_the_retention_and_the_drills_run_and_did_not_fail(
    backup_host: Any, settings: dict[str, Any], what: str, timer: str, state_file: str,
) -> None:
    if not settings.get("backup__server_enabled"):
        pytest.skip("backup__server_enabled is false for this host")
    enabled, active = timer_state(backup_host, timer)
    assert (enabled, active) == ("enabled", "active"), (
        f"{timer} is {enabled} and {active}: deploy the backup role to this host.")
    results = read_json(backup_host, f"{STATE_DIR}/{state_file}") or {}
    failed = {client: r.get("message") for client, r in results.items()
              if r.get("result") == "failed"}
    assert not failed, (
        f"the last {what} failed for {sorted(failed)}: {failed}. "
        "roles/backup/README.md says what each message means and what to do.")
