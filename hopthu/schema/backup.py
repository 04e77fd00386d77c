"""The settings of the `backup` role: borg backups of the stores to the backup host.

roles/backup/defaults/main.yml documents each key; roles/backup/README.md
explains the decisions (Art. 11.7: backups, tested restores, recovery).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import AbsolutePath, PromFile
from hopthu.schema.types import DebianPackage, Port, _host, checked

# --- Types ---------------------------------------------------------------------------

_INVENTORY_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _inventory_host(value: str) -> None:
    if not _INVENTORY_HOST.match(value):
        raise ValueError("is not an inventory host name")


InventoryHost = checked(
    str, "a host name of the inventory's hosts.yml, e.g. backup1 or mail1", _inventory_host
)


def _optional_inventory_host(value: str) -> None:
    if value:
        _inventory_host(value)


OptionalInventoryHost = checked(
    str, '"" (none) or a host name of the inventory\'s hosts.yml, e.g. backup1',
    _optional_inventory_host,
)


def _optional_address(value: str) -> None:
    if value:
        _host(value)


OptionalHostAddress = checked(
    str,
    '"" (none) or the address the store hosts reach the backup host at: an IP address or a '
    "lowercase host name with a dot, e.g. 198.51.100.31",
    _optional_address,
)

#: systemd.time(7): the shorthands, and the parts of a full calendar expression.
_SHORTHANDS = {"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually",
               "quarterly", "semiannually"}
_WEEKDAY = r"(mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_WEEKDAYS = re.compile(rf"^{_WEEKDAY}((,|\.\.){_WEEKDAY})*$", re.IGNORECASE)
_DATE = re.compile(r"^[0-9*][0-9*,./~]*-[0-9*][0-9*,./~]*(-[0-9*][0-9*,./~]*)?$")
_TIME = re.compile(r"^[0-9*][0-9*,./]*:[0-9*][0-9*,./]*(:[0-9*][0-9*,./]*)?$")


def _calendar(value: str) -> None:
    words = value.split(" ")
    if not value or "" in words:
        raise ValueError("is empty or has doubled spaces")
    if len(words) == 1 and words[0] in _SHORTHANDS:
        return
    if len(words) == 1 and words[0].lower() in _SHORTHANDS:
        raise ValueError(f"has capitals; write {words[0].lower()!r}")
    rest = list(words)
    if rest and _WEEKDAYS.match(rest[0]):
        rest.pop(0)
    if rest and _DATE.match(rest[0]):
        rest.pop(0)
    if rest and _TIME.match(rest[0]):
        rest.pop(0)
    if rest:
        raise ValueError("is not a systemd calendar expression (OnCalendar=)")


SystemdCalendar = checked(
    str,
    "a systemd calendar event (OnCalendar=, systemd.time(7)): a shorthand such as daily, or "
    "[WEEKDAY] [DATE] TIME, e.g. '*-*-* 01:00:00' or 'Sun *-*-* 02:30:00'",
    _calendar,
)


_COMPRESSION = re.compile(
    r"^(none|lz4|zstd(,([1-9]|1[0-9]|2[0-2]))?|zlib(,[0-9])?|lzma(,[0-9])?)$")


def _compression(value: str) -> None:
    if not _COMPRESSION.match(value):
        raise ValueError("is not a borg compression spec")


Compression = checked(
    str,
    "a borg compression: none, lz4, zstd[,1-22], zlib[,0-9] or lzma[,0-9], e.g. zstd,3",
    _compression,
)

_QUOTA = re.compile(r"^([0-9]+(\.[0-9]+)?[KMGTP]?)?$")


def _quota(value: str) -> None:
    if not _QUOTA.match(value):
        raise ValueError("is not a borg storage quota")


StorageQuota = checked(
    str,
    '"" (no quota) or a size with an optional K, M, G, T or P suffix (borg serve '
    "--storage-quota), e.g. 500G",
    _quota,
)


def _range(low: int, high: int, what: str) -> Any:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"is outside {low}-{high}")

    return checked(int, f"a whole number from {low} to {high}: {what}", check)


DelaySeconds = _range(0, 21600, "seconds systemd adds at random to each start, e.g. 1800")
MaxAgeHours = _range(1, 744, "hours, e.g. 26 for a daily backup with two hours of slack")
KeepCount = _range(0, 10000, "how many archives of that period to keep, 0 for none")


class BackupSettings(SettingsModel):
    """borg backups from each store host to the backup host (Art. 11.7).

    A store host (backup__client_enabled) backs up its mailboxes, a
    consistent copy of its user database, the mail services' /etc, its DKIM
    and TLS keys and the accounts audit log to its own repository on the
    backup host, over SSH with a key made on the host, through an append-only
    forced command. The backup host (backup__server_enabled) keeps the
    repositories, applies the retention and compacts (the only place where
    history can be removed), and runs restore drills. roles/backup/README.md
    explains the decisions and the recovery runbook.
    """

    namespace = "backup"

    backup__packages: list[DebianPackage] = Field(
        min_length=1,
        description="Packages the role installs on both sides: borgbackup from Debian.",
    )
    backup__client_enabled: bool = Field(
        description=(
            "Whether this host backs itself up to the backup host: true for the mail stores "
            "(group_vars/mail_store.yml)."
        )
    )
    backup__server_enabled: bool = Field(
        description=(
            "Whether this host keeps the repositories: true for the backup host "
            "(group_vars/mail_backup.yml)."
        )
    )
    backup__host_name: InventoryHost = Field(
        description=(
            "This host's name in the backups: a store's repository /srv/borg/<name> and its "
            "archives' prefix, and the name of its public key on the controller. Its inventory "
            "name, as backup__clients and backup__server_host name it."
        )
    )
    backup__server_host: OptionalInventoryHost = Field(
        description=(
            "The backup host's inventory name, whose SSH host key the store hosts pin (the "
            "controller keeps its copy in backup__keys_dir)."
        )
    )
    backup__server_address: OptionalHostAddress = Field(
        description=(
            "The address the store hosts reach the backup host at over SSH; set per "
            "environment."
        )
    )
    backup__server_port: Port = Field(description="The backup host's SSH port.")
    backup__clients: list[InventoryHost] = Field(
        description=(
            "On the backup host: the store hosts it keeps a repository for, each at "
            "/srv/borg/<host> and reachable only with that host's key."
        )
    )
    backup__keys_dir: AbsolutePath = Field(
        description=(
            "On the controller: where the store hosts' public backup keys and the backup host's "
            "SSH host key are kept (public keys only), one directory per environment."
        )
    )
    backup__passphrase_file: AbsolutePath = Field(
        description=(
            "On the controller: the file holding the repositories' passphrase (repokey-blake2), "
            "plain (mode 0600) or encrypted with ansible-vault. Never in git unencrypted."
        )
    )
    backup__passphrase_generate: bool = Field(
        description=(
            "Whether the deploy makes a random passphrase in backup__passphrase_file when the "
            "file is missing (the lab). Elsewhere a missing file stops the deploy: the operator "
            "makes it and keeps a copy off the controller."
        )
    )
    backup__paths: list[AbsolutePath] = Field(
        description=(
            "What each store host backs up besides its mailboxes and its user database: the mail "
            "services' /etc, the DKIM and TLS keys, the accounts audit log. A path missing on a "
            "host is skipped and named in the manifest."
        )
    )
    backup__compression: Compression = Field(
        description="How borg compresses the archives' chunks (borg help compression)."
    )
    backup__schedule: SystemdCalendar = Field(
        description="When each store host backs up (the hopthu-backup.timer's OnCalendar=)."
    )
    backup__randomized_delay_sec: DelaySeconds = Field(
        description=(
            "The random delay systemd adds to each backup's start, so that several stores do "
            "not start at the same second (RandomizedDelaySec=)."
        )
    )
    backup__max_age_hours: MaxAgeHours = Field(
        description=(
            "The infra suite fails when a store's last good backup is older than this many hours."
        )
    )
    backup__metrics_textfile: PromFile = Field(
        description=(
            "Where a store host writes its last backup's success, attempt and result after "
            "each attempt, for the node exporter's textfile collector (the alert BackupTooOld): "
            "a *.prom file in node_exporter__textfile_dir, written only where that directory "
            "exists."
        )
    )
    backup__keep_daily: KeepCount = Field(
        description="Retention on the backup host: the newest archive of each of the last N days."
    )
    backup__keep_weekly: KeepCount = Field(
        description="Retention: the newest archive of each of the last N weeks."
    )
    backup__keep_monthly: KeepCount = Field(
        description="Retention: the newest archive of each of the last N months."
    )
    backup__prune_schedule: SystemdCalendar = Field(
        description=(
            "When the backup host applies the retention and compacts (hopthu-backup-prune.timer)."
        )
    )
    backup__drill_schedule: SystemdCalendar = Field(
        description=(
            "When the backup host drills every store's latest archive (hopthu-backup-drill.timer)."
        )
    )
    backup__repository_quota: StorageQuota = Field(
        description=(
            "The most each store host's repository may hold (borg serve --storage-quota), so a "
            'compromised store cannot fill the backup host\'s disk; "" for none.'
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        if self.backup__client_enabled and self.backup__server_enabled:
            yield CrossCheck(
                ("backup__server_enabled",), True,
                "is true on a host that also backs itself up (backup__client_enabled): a "
                "store's backups must live on another host, or a lost host takes them along",
                "false here, and a separate host in group mail_backup",
            )
        if self.backup__client_enabled:
            for key in ("backup__server_host", "backup__server_address"):
                if not getattr(self, key):
                    yield CrossCheck(
                        (key,), "",
                        "is empty on a store host that backs itself up",
                        "the backup host's inventory name (backup__server_host) and the "
                        "address the store reaches it at (backup__server_address)",
                    )
        textfile_dir = getattr(self, "node_exporter__textfile_dir", None)
        if self.backup__client_enabled and textfile_dir is not None and \
                self.backup__metrics_textfile.rsplit("/", 1)[0] != textfile_dir:
            yield CrossCheck(
                ("backup__metrics_textfile",), self.backup__metrics_textfile,
                f"is not in node_exporter__textfile_dir = {textfile_dir!r}, so the node "
                "exporter would never publish the last backup and BackupTooOld could not fire",
                f"a .prom file in {textfile_dir}, e.g. {textfile_dir}/hopthu_backup.prom",
            )
        keep = (self.backup__keep_daily, self.backup__keep_weekly, self.backup__keep_monthly)
        if self.backup__server_enabled and not any(keep):
            yield CrossCheck(
                ("backup__keep_daily",), self.backup__keep_daily,
                "is 0 like backup__keep_weekly and backup__keep_monthly: the retention would "
                "keep no archive at all",
                "at least one of backup__keep_daily, _weekly, _monthly above 0, e.g. 14",
            )
