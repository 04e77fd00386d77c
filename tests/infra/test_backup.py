"""Backups (Art. 11.7): every store has a recent good backup; history cannot be removed.

Read-only. On each store host: the last run of hopthu-backup (its state file,
/var/lib/hopthu/backup/last.json) succeeded, and the last good backup is
younger than backup__max_age_hours (until the first backup, the time since
backups were enabled there counts), judged by hopthu/backup/freshness.py as
`hopthu status` judges it; the timer that runs it is on; the key
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

from hopthu.backup import freshness

STATE_DIR = "/var/lib/hopthu/backup"
LAST = freshness.STATE
ENABLED_SINCE = freshness.ENABLED_SINCE
AUTHORIZED_KEYS = "/srv/borg/.ssh/authorized_keys"
FORCED = 'restrict,command="borg serve --append-only --restrict-to-repository /srv/borg/{name}'


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
    # The same rule as `hopthu status` (hopthu/backup/freshness.py); a
    # warning (borg warnings, an archive was made) passes.
    verdict = freshness.judge(state, since.stdout.strip() if since.rc == 0 else None,
                              host_now(store_host), int(settings["backup__max_age_hours"]),
                              hostname)
    assert not verdict.failed, f"{hostname}: {verdict.message} — what to do: {verdict.fix}"


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
