"""Audit logs and their clock: journald keeps logs on disk, time is right (Art. 11.5).

The decree asks for audit logs (who logged in, what a daemon did); they are
only evidence if they survive a reboot, are kept long enough and carry the
right time.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

#: journald's time syntax -> seconds (systemd.time(7)).
UNITS = {
    "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "M": 2629800, "month": 2629800, "months": 2629800,
    "y": 31557600, "year": 31557600, "years": 31557600,
}


def seconds(span: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", span):
        total += float(number) * UNITS[unit or "s"]
    return total


def bytes_(size: str) -> int:
    number, unit = re.fullmatch(r"\s*(\d+)\s*([KMGTPE]?)\s*", size).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** " KMGTPE".index(unit or " ")


def journald_config(host: Any) -> dict[str, str]:
    """journald's [Journal] settings after every drop-in (the last one wins)."""
    out = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    config: dict[str, str] = {}
    for line in out.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            config[key.strip()] = value.strip()
    return config


@pytest.fixture(scope="module")
def journald(host: Any) -> dict[str, str]:
    return journald_config(host)


@pytest.mark.control("ART11-5-HARDEN")
def test_journal_is_kept_on_disk(host: Any, journald: dict[str, str]) -> None:
    assert journald.get("Storage") == "persistent", (
        f"journald's Storage is {journald.get('Storage', 'auto (the default)')!r}: set "
        "Storage=persistent in the common role's journald drop-in, so logs survive reboots."
    )
    assert host.file("/var/log/journal").is_directory, (
        "/var/log/journal does not exist: journald keeps logs in memory only. "
        "Restart systemd-journald after deploying the drop-in (or run `journalctl --flush`)."
    )
    header = host.run("journalctl --header --quiet | grep -m1 'File path'")
    assert "/var/log/journal/" in header.stdout, (
        f"journald is not writing to /var/log/journal ({header.stdout.strip()!r}): "
        "restart systemd-journald after deploying its configuration."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_journal_keeps_what_the_settings_say(
    journald: dict[str, str], settings: dict[str, Any]
) -> None:
    want_use = settings["common__journald_max_use"]
    want_retention = settings["common__journald_max_retention"]
    problems = []
    if bytes_(journald.get("SystemMaxUse", "0")) != bytes_(str(want_use)):
        problems.append(f"SystemMaxUse={journald.get('SystemMaxUse')} (want {want_use})")
    if seconds(journald.get("MaxRetentionSec", "0")) != seconds(str(want_retention)):
        problems.append(
            f"MaxRetentionSec={journald.get('MaxRetentionSec')} (want {want_retention})")
    assert not problems, (
        f"journald's limits differ from common__journald_max_use/_max_retention: "
        f"{'; '.join(problems)}. Redeploy the common role."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_timezone_is_the_configured_one(host: Any, settings: dict[str, Any]) -> None:
    expected = settings["common__timezone"]
    # One level only: some zone names are themselves links to older names.
    link = host.run("readlink /etc/localtime").stdout.strip()
    assert link.endswith("/zoneinfo/" + expected), (
        f"/etc/localtime points to {link or 'nothing'}; the settings say {expected} "
        "(common__timezone): redeploy the common role (timedatectl set-timezone)."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_chrony_keeps_the_clock(host: Any, settings: dict[str, Any]) -> None:
    chrony = host.service("chrony")
    assert host.package("chrony").is_installed and chrony.is_enabled, (
        "chrony is not installed and enabled: log timestamps drift. The common role "
        "installs and enables it."
    )
    container = host.run("systemd-detect-virt --container").rc == 0
    if container:
        # chrony.service has ConditionCapability=CAP_SYS_TIME: a container
        # takes its clock from the machine it runs on.
        return
    assert chrony.is_running, "chrony is enabled but not running: see `systemctl status chrony`."
    servers = settings["common__ntp_servers"] or []
    sources = host.check_output("chronyc -N sources")
    missing = [s for s in servers if s not in sources]
    assert not missing, (
        f"chrony does not use {missing} (common__ntp_servers): redeploy the common role."
    )
