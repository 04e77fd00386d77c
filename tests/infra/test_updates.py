"""Updates: security fixes arrive by themselves, from the configured mirror (Art. 11.2).

apt's effective configuration (``apt-config dump``) is read after every file
in /etc/apt/apt.conf.d, so a stray file that turns updates off is caught.
"""

from __future__ import annotations

import re
from typing import Any

import pytest


def apt_config(host: Any) -> dict[str, list[str]]:
    """``apt-config dump`` as option -> values (list options repeat their name)."""
    config: dict[str, list[str]] = {}
    for line in host.check_output("apt-config dump").splitlines():
        match = re.match(r'^(\S+?)(?:::)?\s+"(.*)";$', line)
        if match:
            config.setdefault(match.group(1), []).append(match.group(2))
    return config


@pytest.fixture(scope="module")
def apt(host: Any) -> dict[str, list[str]]:
    return apt_config(host)


def last(apt: dict[str, list[str]], key: str) -> str | None:
    values = apt.get(key)
    return values[-1] if values else None


@pytest.mark.control("ART11-2-UPGRADE")
def test_unattended_upgrades_run_daily(
    host: Any, apt: dict[str, list[str]], settings: dict[str, Any]
) -> None:
    if not settings["common__unattended_upgrades_enabled"]:
        pytest.skip("common__unattended_upgrades_enabled is false for this host")
    assert host.package("unattended-upgrades").is_installed, (
        "unattended-upgrades is not installed: the common role installs it."
    )
    wrong = {
        key: last(apt, key)
        for key in ("APT::Periodic::Update-Package-Lists", "APT::Periodic::Unattended-Upgrade")
        if last(apt, key) != "1"
    }
    assert not wrong, (
        f"apt does not fetch and install updates every day: {wrong} (want \"1\"). The "
        "common role's 20auto-upgrades file sets both; another file in "
        "/etc/apt/apt.conf.d may override it (apt-config dump shows the result)."
    )
    states = {
        timer: host.run(f"systemctl is-enabled {timer}").stdout.strip() or "unknown"
        for timer in ("apt-daily.timer", "apt-daily-upgrade.timer")
    }
    off = {timer: state for timer, state in states.items() if state != "enabled"}
    assert not off, (
        f"apt's daily timers are not enabled: {off}. Without them the settings above never "
        "run and no update is installed. The common role must own them: unmask and enable "
        "apt-daily.timer and apt-daily-upgrade.timer."
    )


@pytest.mark.control("ART11-2-UPGRADE")
def test_unattended_upgrades_take_security_updates(
    apt: dict[str, list[str]], settings: dict[str, Any]
) -> None:
    if not settings["common__unattended_upgrades_enabled"]:
        pytest.skip("common__unattended_upgrades_enabled is false for this host")
    origins = apt.get("Unattended-Upgrade::Origins-Pattern", []) + apt.get(
        "Unattended-Upgrade::Allowed-Origins", [])
    security = [o for o in origins if "security" in o.lower()]
    assert security, (
        f"unattended-upgrades' origins are {origins or 'empty'}: none is the Debian "
        "security archive, so security fixes are not installed. Add "
        "\"origin=Debian,codename=${distro_codename}-security,label=Debian-Security\"."
    )


@pytest.mark.control("ART11-2-UPGRADE")
def test_unattended_upgrades_reboot_and_mail_as_configured(
    apt: dict[str, list[str]], settings: dict[str, Any]
) -> None:
    if not settings["common__unattended_upgrades_enabled"]:
        pytest.skip("common__unattended_upgrades_enabled is false for this host")
    want_reboot = "true" if settings["common__unattended_upgrades_reboot"] else "false"
    reboot = last(apt, "Unattended-Upgrade::Automatic-Reboot") or "false"
    assert reboot == want_reboot, (
        f"Unattended-Upgrade::Automatic-Reboot is {reboot}; common__unattended_upgrades_reboot "
        f"says {want_reboot}. Mail hosts reboot in a maintenance window: redeploy."
    )
    if want_reboot == "true":
        want_time = settings["common__unattended_upgrades_reboot_time"]
        assert last(apt, "Unattended-Upgrade::Automatic-Reboot-Time") == want_time, (
            f"Automatic-Reboot-Time is not {want_time} (common__unattended_upgrades_reboot_time)."
        )
    want_mail = settings["common__unattended_upgrades_mail"] or None
    assert (last(apt, "Unattended-Upgrade::Mail") or None) == want_mail, (
        f"Unattended-Upgrade::Mail is {last(apt, 'Unattended-Upgrade::Mail')!r}; "
        f"common__unattended_upgrades_mail says {want_mail!r}: redeploy the common role."
    )


@pytest.mark.control("ART11-2-UPGRADE")
@pytest.mark.control("ART3-BUILD")
def test_apt_uses_the_configured_proxy(apt: dict[str, list[str]], settings: dict[str, Any]) -> None:
    want = settings["common__apt_proxy"] or None
    actual = last(apt, "Acquire::http::Proxy")
    assert actual == want, (
        f"apt's HTTP proxy is {actual!r}; common__apt_proxy says {want!r}. Packages and "
        "updates must come through the data centre's mirror or proxy: redeploy the common "
        "role, and look for another Acquire::http::Proxy in /etc/apt/apt.conf.d."
    )


@pytest.mark.control("ART11-2-UPGRADE")
@pytest.mark.control("ART3-BUILD")
def test_apt_installs_from_the_configured_mirrors(host: Any, settings: dict[str, Any]) -> None:
    # apt-get indextargets lists what the sources define, without the network.
    out = host.check_output("apt-get indextargets --format '$(REPO_URI) $(RELEASE)'")
    repos = {tuple(line.split()) for line in out.splitlines() if line.strip()}
    release = host.check_output(". /etc/os-release && echo $VERSION_CODENAME").strip()
    mirror = settings["common__apt_mirror"].rstrip("/") + "/"
    security = settings["common__apt_security_mirror"].rstrip("/") + "/"
    expected = {(mirror, release), (mirror, f"{release}-updates"),
                (security, f"{release}-security")}
    missing = sorted(expected - repos)
    foreign = sorted({uri for uri, _ in repos} - {mirror, security})
    assert not missing and not foreign, (
        "apt's sources do not match the settings (common__apt_mirror, "
        "common__apt_security_mirror)."
        + (f"\nMissing: {', '.join(' '.join(m) for m in missing)}." if missing else "")
        + (f"\nOther sources: {', '.join(foreign)}." if foreign else "")
        + "\nRedeploy the common role; it owns /etc/apt/sources.list.d/."
    )


@pytest.mark.intrusive  # takes apt's lock and writes /var/log/unattended-upgrades
@pytest.mark.control("ART11-2-UPGRADE")
def test_unattended_upgrade_dry_run_succeeds(host: Any) -> None:
    result = host.run("unattended-upgrade --dry-run --debug")
    assert result.rc == 0, (
        f"`unattended-upgrade --dry-run` failed (exit {result.rc}):\n{result.stdout[-3000:]}"
        f"{result.stderr[-2000:]}\nFix what it names before relying on automatic updates."
    )
