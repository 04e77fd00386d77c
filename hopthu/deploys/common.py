"""The common deploy: the base of every hopthu host, before any mail service.

Where it sits. Every message that crosses a hopthu host depends on this
layer: packages and security updates come from the ministry's mirror
(Art. 11.2), the clock (chrony) stamps mail, logs and DKIM signatures, the
local validating resolver (unbound) answers the DNS questions that Postfix
and Rspamd ask for every message, the firewall opens each service to its
zone only, internal network or Internet (Art. 3), and sshd, sysctl and the
rest of the hardening keep the host itself closed (Art. 11.5).

What it owns. Whole files, each rendered from one template under
templates/ at the mirrored path: the apt sources, proxy and update policy,
/etc/timezone, chrony.conf, the journald, sshd, unbound and core dump
drop-ins, /etc/ssh/sshd_config, /etc/resolv.conf, /etc/nftables.conf,
/etc/issue(.net), the sysctl and modprobe files, a login umask, and the
firewall helper /usr/local/sbin/hopthu-firewall. roles/common/README.md
lists them and says which ones replace Debian's.

How a change is checked. A file that a daemon cannot read would cut the
deploy off (sshd, the firewall) or break every lookup (unbound), so those
files are checked before they are written (``checked_put``, pyinfra's
``validate:``): ``sshd -t -f``, ``unbound-checkconf``, ``nft -c -f``,
``chronyd -p -f``. The last steps, run only when a file changed
(``_if=op.did_change``), check the whole configuration again before they
reload. The firewall is applied by hopthu-firewall with a rollback timer,
and confirmed only after a NEW SSH connection from the controller got
through.

roles/common/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

import socket
from typing import Any

from pyinfra import host
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, files, python, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template, reload_settings, settings, unit_enabled

#: The Debian releases hopthu supports, major -> codename (DESIGN.md §3).
SUPPORTED_RELEASES = {12: "bookworm", 13: "trixie"}

#: Seconds a successful `apt-get update` stays fresh: the role's
#: ``cache_valid_time`` (the shape test compares them).
APT_CACHE_VALID_TIME = 3600


def check_supported_release(*, name: str) -> int:
    """Read the Debian release from the host; refuse any other (returns the major).

    Raises before any operation runs, for every host: pyinfra stops the
    whole run while it is still preparing operations.
    """
    distro = host.get_fact(LinuxDistribution)
    major = distro.get("major")
    if distro.get("name") != "Debian" or major not in SUPPORTED_RELEASES:
        raise DeployError(
            f"{name}: {host.name} runs {distro.get('name')} {major}; hopthu supports "
            f"Debian 12 (bookworm) and Debian 13 (trixie) only. Install or upgrade the host "
            f"to one of them, or remove it from the inventory."
        )
    return int(major)


def set_debian_major(values: dict[str, Any], major: int, *, name: str) -> dict[str, Any]:
    """The settings with ``common__debian_major`` from the host, as set_fact gives them.

    When the host's release differs from what the settings assumed, they are
    loaded again with the release as an extra variable, so that every value
    derived from it is resolved again too (Ansible resolves lazily).
    """
    if values.get("common__debian_major") == major:
        return values
    return reload_settings({"common__debian_major": major})


def _check_new_ssh_connection(address: str, port: int, timeout: float = 20.0) -> None:
    """Open a NEW TCP connection from the controller and read sshd's banner."""
    with socket.create_connection((address, port), timeout=timeout) as conn:
        conn.settimeout(timeout)
        banner = conn.recv(256)
    if not banner.startswith(b"SSH-2.0-"):
        raise RuntimeError(
            f"{address}:{port} answered {banner[:40]!r} instead of an SSH banner after the "
            f"new firewall ruleset; it rolls back in 120 s. Check common__firewall_* settings."
        )


def apply() -> None:
    """Converge the current host (called by deploy.py for every host)."""
    values = settings()

    major = check_supported_release(name="Check the host runs a supported Debian release")
    values = set_debian_major(values, major, name="Set the Debian major release from the host")

    # --- apt (Art. 11.2) ---------------------------------------------------------

    apt_proxy = put_template(
        name="Render apt proxy",
        template="etc/apt/apt.conf.d/01hopthu-proxy.j2",
        dest="/etc/apt/apt.conf.d/01hopthu-proxy",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    put_template(
        name="Render apt update stamp hook",
        template="etc/apt/apt.conf.d/02hopthu-update-stamp.j2",
        dest="/etc/apt/apt.conf.d/02hopthu-update-stamp",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    apt_sources = put_template(
        name="Render Debian apt sources",
        template="etc/apt/sources.list.d/debian.sources.j2",
        dest="/etc/apt/sources.list.d/debian.sources",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    apt_sources_list = put_template(
        name="Render empty legacy sources.list",
        template="etc/apt/sources.list.j2",
        dest="/etc/apt/sources.list",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # The lists are fetched again at once when the sources or the proxy
    # change, otherwise only when the stamp the hook keeps is over an hour old.
    sources_change = (
        apt_proxy.will_change or apt_sources.will_change or apt_sources_list.will_change
    )
    apt.update(
        name="Refresh the apt cache",
        cache_time=None if sources_change else APT_CACHE_VALID_TIME,
    )
    apt.packages(
        name="Install base packages",
        packages=[*values["common__packages"], *values["common__packages_extra"]],
        present=True,
    )

    # --- Time ----------------------------------------------------------------------

    put_template(
        name="Render time zone name",
        template="etc/timezone.j2",
        dest="/etc/timezone",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    files.link(
        name="Link /etc/localtime to the time zone",
        path="/etc/localtime",
        target=f"/usr/share/zoneinfo/{values['common__timezone']}",
        symbolic=True,
        force=True,
        force_backup=False,
    )
    chrony_conf = put_template(
        name="Render chrony configuration",
        template="etc/chrony/chrony.conf.j2",
        dest="/etc/chrony/chrony.conf",
        user="root",
        group="root",
        mode="0644",
        validate="chronyd -p -f %s",
        variables=values,
    )
    # Enabled, not started here: inside a container chrony.service is skipped
    # by its ConditionCapability=CAP_SYS_TIME.
    systemd.service(
        name="Enable chrony",
        service="chrony.service",
        running=None,
        enabled=True,
    )

    # --- Unattended security upgrades (Art. 11.2) ----------------------------------

    put_template(
        name="Render automatic upgrade schedule",
        template="etc/apt/apt.conf.d/20auto-upgrades.j2",
        dest="/etc/apt/apt.conf.d/20auto-upgrades",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    put_template(
        name="Render unattended-upgrades policy",
        template="etc/apt/apt.conf.d/50unattended-upgrades.j2",
        dest="/etc/apt/apt.conf.d/50unattended-upgrades",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # The timers that run `apt-get update` and unattended-upgrade every day.
    # The lab's older images masked them; Ansible's `masked: false` and
    # unit_enabled both undo that.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        unit_enabled(name="Enable the daily apt timers", unit=timer)

    # --- Persistent journal (Art. 11.5: audit logs) --------------------------------

    journal_dir = files.directory(
        name="Create the persistent journal directory",
        path="/var/log/journal",
        present=True,
        user="root",
        group="systemd-journal",
        mode="2755",
    )
    files.directory(
        name="Create the journald drop-in directory",
        path="/etc/systemd/journald.conf.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    journald_conf = put_template(
        name="Render journald retention drop-in",
        template="etc/systemd/journald.conf.d/hopthu.conf.j2",
        dest="/etc/systemd/journald.conf.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )

    # --- Login banners (Art. 11.5) --------------------------------------------------

    put_template(
        name="Render login banner",
        template="etc/issue.j2",
        dest="/etc/issue",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    put_template(
        name="Render network login banner",
        template="etc/issue.net.j2",
        dest="/etc/issue.net",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )

    # --- sshd (Art. 11.5) -------------------------------------------------------------

    # The drop-in first: sshd_config includes it by name, so the main file's
    # check reads the new drop-in.
    sshd_dropin = put_template(
        name="Render sshd hardening drop-in",
        template="etc/ssh/sshd_config.d/hopthu.conf.j2",
        dest="/etc/ssh/sshd_config.d/hopthu.conf",
        user="root",
        group="root",
        mode="0600",
        validate="sshd -t -f %s",
        variables=values,
    )
    sshd_main = put_template(
        name="Render sshd main configuration",
        template="etc/ssh/sshd_config.j2",
        dest="/etc/ssh/sshd_config",
        user="root",
        group="root",
        mode="0600",
        validate="sshd -t -f %s",
        variables=values,
    )

    # --- Local validating resolver --------------------------------------------------

    unbound_conf = put_template(
        name="Render unbound resolver configuration",
        template="etc/unbound/unbound.conf.d/hopthu.conf.j2",
        dest="/etc/unbound/unbound.conf.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        validate="unbound-checkconf %s",
        variables=values,
    )
    systemd.service(
        name="Enable and start unbound",
        service="unbound.service",
        running=True,
        enabled=True,
    )
    put_template(
        name="Render resolver stub configuration",
        template="etc/resolv.conf.j2",
        dest="/etc/resolv.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )

    # --- Firewall: two zones (Art. 3) -------------------------------------------------

    put_template(
        name="Render firewall apply script",
        template="usr/local/sbin/hopthu-firewall.j2",
        dest="/usr/local/sbin/hopthu-firewall",
        user="root",
        group="root",
        mode="0755",
        variables=values,
    )
    ruleset = put_template(
        name="Render nftables ruleset",
        template="etc/nftables.conf.j2",
        dest="/etc/nftables.conf",
        user="root",
        group="root",
        mode="0755",
        validate="nft -c -f %s",
        variables=values,
    )
    # Enabled, so that the ruleset loads at boot; loaded now only by the
    # steps at the end, which can roll it back.
    systemd.service(
        name="Enable nftables",
        service="nftables.service",
        running=None,
        enabled=True,
    )

    # --- Kernel and login hardening (Art. 11.5, Lynis) -------------------------------

    sysctl_conf = put_template(
        name="Render kernel hardening settings",
        template="etc/sysctl.d/60-hopthu.conf.j2",
        dest="/etc/sysctl.d/60-hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # A minimal Debian has no kmod, hence no /etc/modprobe.d, until some
    # package needs it; the blocklist must be in place before that.
    files.directory(
        name="Create the modprobe drop-in directory",
        path="/etc/modprobe.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    put_template(
        name="Render kernel module blocklist",
        template="etc/modprobe.d/hopthu.conf.j2",
        dest="/etc/modprobe.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    put_template(
        name="Render core dump limits",
        template="etc/security/limits.d/hopthu.conf.j2",
        dest="/etc/security/limits.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    files.directory(
        name="Create the core dump drop-in directory",
        path="/etc/systemd/coredump.conf.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    put_template(
        name="Render systemd core dump settings",
        template="etc/systemd/coredump.conf.d/hopthu.conf.j2",
        dest="/etc/systemd/coredump.conf.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    put_template(
        name="Render login umask",
        template="etc/profile.d/hopthu-umask.sh.j2",
        dest="/etc/profile.d/hopthu-umask.sh",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )

    # No cron daemon runs here (systemd timers run apt, dpkg and logrotate),
    # but packages still ship cron scripts: only root may read or add them
    # (Lynis FILE-7524), should a cron daemon ever be installed.
    for cron_dir in (
        "/etc/cron.d",
        "/etc/cron.daily",
        "/etc/cron.hourly",
        "/etc/cron.weekly",
        "/etc/cron.monthly",
    ):
        files.directory(
            name="Restrict the cron directories to root",
            path=cron_dir,
            present=True,
            user="root",
            group="root",
            mode="0700",
        )

    # --- What the role's handlers do, in their order, only after a change -----------

    journald_changed = any_changed(journal_dir, journald_conf)
    systemd.service(
        name="Restart journald",
        service="systemd-journald.service",
        running=True,
        restarted=True,
        _if=journald_changed,
    )
    # Moves what journald kept in /run since boot to /var/log/journal.
    server.shell(
        name="Flush the journal to persistent storage",
        commands=["journalctl --flush"],
        _if=journald_changed,
    )
    # chronyd has no reload; in a container the unit is skipped and stays
    # stopped, so there is nothing to restart.
    systemd.service(
        name="Restart chrony",
        service="chrony.service",
        running=None,
        restarted=True,
        _if=chrony_conf.did_change,
    )
    server.shell(
        name="Check unbound configuration",
        commands=["unbound-checkconf"],
        _if=unbound_conf.did_change,
    )
    server.shell(
        name="Reload unbound",
        commands=["systemctl reload-or-restart unbound.service"],
        _if=unbound_conf.did_change,
    )
    # systemd-sysctl applies the file now as it does at boot; keys marked "-"
    # that a container cannot set are skipped.
    server.shell(
        name="Apply kernel hardening settings",
        commands=["/usr/lib/systemd/systemd-sysctl /etc/sysctl.d/60-hopthu.conf"],
        _if=sysctl_conf.did_change,
    )
    sshd_changed = any_changed(sshd_dropin, sshd_main)
    server.shell(
        name="Check sshd configuration",
        commands=["sshd -t"],
        _if=sshd_changed,
    )
    server.shell(
        name="Reload sshd",
        commands=["systemctl reload-or-restart ssh.service"],
        _if=sshd_changed,
    )
    server.shell(
        name="Apply nftables ruleset with a rollback timer",
        commands=["/usr/local/sbin/hopthu-firewall apply"],
        _if=ruleset.did_change,
    )
    python.call(
        name="Check a new SSH connection gets through the firewall",
        function=_check_new_ssh_connection,
        address=host.data.get("ssh_hostname") or host.name,
        port=int(values["common__sshd_port"]),
        _if=ruleset.did_change,
    )
    server.shell(
        name="Confirm the nftables ruleset",
        commands=["/usr/local/sbin/hopthu-firewall confirm"],
        _if=ruleset.did_change,
    )
