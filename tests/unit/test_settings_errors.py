"""Bad settings stop with the file, the key, the value and the allowed form.

Each case makes one mistake in a small project tree (conftest.py's
`project`: the real common defaults and policy, an inventory `t` with mx1
and backup1) and checks that the report names the file to fix, the key (with
the path inside a nested value) and what is allowed instead.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from layouts import SPLIT_HOSTS

from hopthu import ROOT
from hopthu.cli import main
from hopthu.settings import SettingsError, SettingsIssue, load_host, load_inventory

Project = Any  # conftest.py's tree: .root, .inventory, .write(path, text)

ENV = "inventories/t/group_vars/all.yml"
POLICY = "group_vars/all.yml"
DEFAULTS = "roles/common/defaults/main.yml"


def env(text: str) -> Callable[[Project], None]:
    """The environment's group_vars/all.yml holds `text`."""
    return lambda p: p.write(ENV, text)


def edit(path: str, old: str, new: str) -> Callable[[Project], None]:
    def apply(p: Project) -> None:
        file = p.root / path
        text = file.read_text(encoding="utf-8")
        assert re.search(old, text, flags=re.MULTILINE), f"{old!r} not in {path}"
        file.write_text(re.sub(old, new, text, count=1, flags=re.MULTILINE), encoding="utf-8")

    return apply


def append(path: str, text: str) -> Callable[[Project], None]:
    def apply(p: Project) -> None:
        with (p.root / path).open("a", encoding="utf-8") as file:
            file.write(text)

    return apply


def steps(*actions: Callable[[Project], None]) -> Callable[[Project], None]:
    def apply(p: Project) -> None:
        for action in actions:
            action(p)

    return apply


@dataclass
class Case:
    id: str
    setup: Callable[[Project], None]
    file: str
    key: str
    allowed: str
    message: str = ""


NFD_HANOI = unicodedata.normalize("NFD", "Hà Nội")

CASES = [
    Case("wrong-type-string-for-int", env('common__sshd_port: "twenty-two"\n'),
         ENV, "common__sshd_port", "a port number, a whole number from 1 to 65535",
         "is a string, which is the wrong type"),
    Case("wrong-type-string-for-bool", env('common__unattended_upgrades_enabled: "yes"\n'),
         ENV, "common__unattended_upgrades_enabled", "true or false"),
    Case("misspelled-key", env('common__timezon: "UTC"\n'),
         ENV, "common__timezon", "a variable of roles/common/defaults/main.yml",
         "did you mean common__timezone?"),
    Case("missing-required-value", edit(DEFAULTS, r'^common__timezone: .*\n', ""),
         DEFAULTS, "common__timezone", "an IANA time zone name", "is not set"),
    Case("required-value-left-null", edit(DEFAULTS, r'^common__timezone: .*$',
                                          "common__timezone: null"),
         DEFAULTS, "common__timezone", "an IANA time zone name",
         f"is required and has no default ({DEFAULTS} leaves it empty): set it in {ENV}"),
    Case("bad-domain-capitals", env('common__ntp_servers: ["NTP.example.org"]\n'),
         ENV, "common__ntp_servers[0]", "a lowercase host name with at least one dot",
         "has capital letters; write 'ntp.example.org'"),
    Case("bad-domain-no-dot", env(
        'common__resolver_forward_zones:\n  - name: "moj gov"\n    addresses: ["192.0.2.53"]\n'),
         ENV, "common__resolver_forward_zones[0].name", "a lowercase DNS zone name",
         "is not an RFC 1123 label"),
    Case("cidr-with-host-bits", env('common__firewall_internal_networks: ["10.0.0.1/8"]\n'),
         ENV, "common__firewall_internal_networks[0]", "with the host bits zero",
         "did you mean '10.0.0.0/8'?"),
    Case("cidr-garbage", env('common__firewall_internal_networks: ["198.18.0.0/25", "lan/24"]\n'),
         ENV, "common__firewall_internal_networks[1]", "a network in CIDR notation",
         "is not a network in CIDR notation"),
    Case("non-nfc-banner", edit(POLICY, r"^common__login_banner: >-\n(  .*\n)+",
                                f'common__login_banner: "{NFD_HANOI}"\n'),
         POLICY, "common__login_banner", "Unicode text in NFC",
         "write the NFC form 'Hà Nội'"),
    Case("trust-anchor-not-a-key", env(
        'common__resolver_trust_anchors: ["peer.test. DNSKEY 257 3 15 not*base64"]\n'),
         ENV, "common__resolver_trust_anchors[0]", "a DNSKEY or DS record in zone-file form",
         "has a key that is not base64"),
    Case("trust-anchor-relative-name", env(
        'common__resolver_trust_anchors: ["peer.test DS 5535 15 2 abcdef"]\n'),
         ENV, "common__resolver_trust_anchors[0]", "a DNSKEY or DS record",
         "does not start with an absolute zone name"),
    Case("bad-port", env("common__sshd_port: 70000\n"),
         ENV, "common__sshd_port", "from 1 to 65535", "is not a port number"),
    Case("bad-port-spec", env(
        'common__firewall_service_ports:\n  ssh: ["tcp/22"]\n  smtp: ["smtp/25"]\n'),
         ENV, "common__firewall_service_ports.smtp[0]", "'tcp/PORT' or 'udp/PORT'"),
    Case("apt-proxy-not-http", env('common__apt_proxy: "ftp://192.0.2.5:3142"\n'),
         ENV, "common__apt_proxy", '"" (none) or an http:// or https:// URL',
         "has the scheme 'ftp'"),
    Case("time-of-day-25h", env('common__unattended_upgrades_reboot_time: "25:00"\n'),
         ENV, "common__unattended_upgrades_reboot_time", "a time of day HH:MM",
         "is not a time of day"),
    Case("bad-enum", env('common__sshd_permit_root_login: "without-password"\n'),
         ENV, "common__sshd_permit_root_login", "one of: 'prohibit-password', 'no'"),
    Case("debian-11", env("common__debian_major: 11\n"),
         ENV, "common__debian_major", "one of: 12, 13"),
    Case("undefined-reference", env('common__apt_proxy: "http://{{ apt_proxy_host }}:3142"\n'),
         ENV, "common__apt_proxy", "a variable defined in role defaults",
         "refers to something undefined: 'apt_proxy_host' is undefined"),
    Case("reference-cycle", env('vault_a: "{{ vault_b }}"\nvault_b: "x{{ vault_a }}"\n'),
         ENV, "vault_a", "break the cycle",
         "reference cycle: vault_a -> vault_b -> vault_a"),
    Case("template-syntax", env('common__sshd_port: "{{ 22 + }}"\n'),
         ENV, "common__sshd_port", "a Jinja2 template", "is not a valid Jinja2 template"),
    Case("env-key-shadowed-by-policy", steps(
        env('common__apt_proxy: "http://192.0.2.5:3142"\n'),
        append(POLICY, 'common__apt_proxy: ""\n')),
         POLICY, "common__apt_proxy", "a value that differs per environment belongs only in "
         "inventories/<env>/", f"is also set in {ENV}:1 (inventory group_vars/all)"),
    Case("env-group-key-shadowed-by-policy-group", steps(
        lambda p: p.write("inventories/t/group_vars/mail_mx.yml",
                          'common__ntp_servers: ["ntp.example.org"]\n'),
        lambda p: p.write("group_vars/mail_mx.yml", "common__ntp_servers: []\n")),
         "group_vars/mail_mx.yml", "common__ntp_servers", "one layer per key",
         "Ansible lets playbook group_vars/mail_mx win"),
    Case("unknown-prefix", env('timezone: "UTC"\n'),
         ENV, "timezone", "common__*, ",
         "no known prefix"),
    Case("malformed-yaml", env("common__sshd_port: [22\ncommon__timezone: UTC\n"),
         f"{ENV}:2", "", "", "is not valid YAML (line 2"),
    Case("group-vars-not-a-mapping", env("- common__sshd_port: 22\n"),
         f"{ENV}:1", "", "", "holds a list, but a variable file must be a mapping"),
    Case("list-where-mapping", env("common__firewall_group_services: [mail_mx]\n"),
         ENV, "common__firewall_group_services", "a mapping of keys",
         "is a list, which is the wrong type"),
    Case("mapping-where-list", env("common__packages: {curl: true}\n"),
         ENV, "common__packages", "a list of items, each a Debian package name"),
    Case("bad-package-name", env('common__packages_extra: ["Vim"]\n'),
         ENV, "common__packages_extra[0]", "a Debian package name", "write 'vim'"),
    Case("unknown-service-for-a-group", env(
        "common__firewall_group_services:\n"
        "  mail_mx: {internet: [smtp, smpt], internal: []}\n"),
         ENV, "common__firewall_group_services.mail_mx.internet[1]",
         "one of the services of common__firewall_service_ports: dns, dovecot-auth, "
         "dovecot-metrics, https"),
    Case("misspelled-nested-key", env(
        "common__firewall_group_services:\n  mail_mx: {internet: [], intranet: []}\n"),
         ENV, "common__firewall_group_services.mail_mx.intranet", "exactly the keys",
         "did you mean 'internet'?"),
    Case("ssh-port-not-opened", env("common__sshd_port: 2222\n"),
         DEFAULTS, "common__firewall_service_ports.ssh", "includes 'tcp/2222'"),
    Case("journald-size-unit", env('common__journald_max_use: "2GB"\n'),
         ENV, "common__journald_max_use", "journald.conf(5) syntax"),
    Case("magic-variable-set", env("group_names: [mail_mx]\n"),
         ENV, "group_names", "remove it", "is set by Ansible for every host"),
    Case("duplicate-key", env("common__sshd_port: 22\ncommon__sshd_port: 2222\n"),
         f"{ENV}:2", "", "", "the key 'common__sshd_port' is set twice (lines 1 and 2)"),
    Case("empty-required-list", env("common__firewall_internal_networks: []\n"),
         ENV, "common__firewall_internal_networks", "a list (at least 1)",
         "has 0 items, fewer than the 1 required"),
    Case("setting-in-play-vars", lambda p: p.write("site.yml", """
        - name: Base
          hosts: all
          vars:
            common__timezone: UTC
          roles:
            - role: common
    """), "site.yml", "common__timezone", "settings live in roles/<role>/defaults/",
         "is a setting in play vars (play 1 (Base))"),
    Case("setting-in-role-vars", lambda p: p.write("roles/common/vars/main.yml",
                                                    'common__timezone: "UTC"\n'),
         "roles/common/vars/main.yml:1", "common__timezone", "role vars hold only internal",
         "ranks above every inventory"),
    # --- The mail daemons' restart policy (Art. 11.1), ministry-wide -------------------
    Case("restart-at-once", edit(POLICY, r"^hopthu__service_restart_sec: .*$",
                                 "hopthu__service_restart_sec: 0"),
         POLICY, "hopthu__service_restart_sec", "a whole number of seconds from 1 to 300",
         "is outside 1-300"),
    Case("start-limit-turned-off", edit(POLICY, r"^hopthu__service_start_limit_interval_sec: .*$",
                                        "hopthu__service_start_limit_interval_sec: 0"),
         POLICY, "hopthu__service_start_limit_interval_sec",
         "a whole number of seconds from 60 to 86400", "is outside 60-86400"),
    Case("start-limit-never-reached", edit(POLICY, r"^hopthu__service_restart_sec: .*$",
                                           "hopthu__service_restart_sec: 60"),
         POLICY, "hopthu__service_restart_sec", "fewer than 60 seconds",
         "would never reach the start limit and would be restarted forever"),
    # --- The filtering roles (redis, rspamd): checked even where not applied ----------
    Case("rspamd-rate-not-count-per-period",
         env('rspamd__ratelimit_user_rate: "200 per hour"\n'),
         ENV, "rspamd__ratelimit_user_rate", "COUNT / PERIOD as Rspamd's ratelimit reads it",
         "is not COUNT / PERIOD"),
    Case("rspamd-milter-on-the-network", env('rspamd__milter_bind: "0.0.0.0:11332"\n'),
         ENV, "rspamd__milter_bind", "a loopback address and port",
         "is not a loopback HOST:PORT"),
    Case("rspamd-extension-with-dot-and-capitals",
         env('rspamd__blocked_extensions: ["exe", ".DOCM"]\n'),
         ENV, "rspamd__blocked_extensions[1]", "a file name extension without the dot",
         "write 'docm'"),
    Case("rspamd-pattern-without-slashes", env('rspamd__banned_body_patterns: ["casino"]\n'),
         ENV, "rspamd__banned_body_patterns[0]", "/REGEXP/FLAGS", "is not /REGEXP/FLAGS"),
    Case("rspamd-reply-with-vietnamese-diacritics",
         env('rspamd__banned_content_message: "Thư bị từ chối"\n'),
         ENV, "rspamd__banned_content_message", "one line of printable ASCII",
         "write Vietnamese without diacritics"),
    Case("rspamd-dkim-selector-not-a-label", env('rspamd__dkim_selector: "Mail_1"\n'),
         ENV, "rspamd__dkim_selector", "a DKIM selector: one lowercase DNS label",
         "is not a single DNS label"),
    Case("rspamd-dkim-key-too-small", env("rspamd__dkim_key_bits: 1024\n"),
         ENV, "rspamd__dkim_key_bits", "one of: 2048, 3072, 4096"),
    Case("redis-bound-to-the-network", env('redis__bind: ["127.0.0.1", "0.0.0.0"]\n'),
         ENV, "redis__bind[1]", "a loopback address", "is not a loopback address"),
    Case("redis-memory-in-capitals", env('redis__maxmemory: "512MB"\n'),
         ENV, "redis__maxmemory", "a Redis memory size", "is not a Redis memory size"),
    # --- clamav and Dovecot's junk settings: checked even where not applied ------------
    Case("clamav-limit-turned-off", env("clamav__max_file_size: 0\n"),
         ENV, "clamav__max_file_size", "from 1048576 (1 MiB) to 2147483647",
         "is 0, which turns the limit off"),
    Case("clamav-limit-beyond-what-clamav-scans", env("clamav__max_scan_size: 4294967296\n"),
         ENV, "clamav__max_scan_size", "the largest file ClamAV can scan",
         "is outside 1 MiB to 2 GiB - 1"),
    Case("clamav-freshclam-checks-out-of-range", env("clamav__freshclam_checks: 100\n"),
         ENV, "clamav__freshclam_checks", "a whole number from 1 to 50", "is outside 1-50"),
    Case("clamav-mirror-without-scheme",
         env('clamav__freshclam_private_mirrors: ["clamav.dc.example.net"]\n'),
         ENV, "clamav__freshclam_private_mirrors[0]", "an http:// or https:// URL",
         "has no scheme"),
    Case("clamav-signature-hash-in-capitals", env(
        'clamav__custom_signatures: ["44D88612FEA8A8F36DE82E1278ABB02F:68:Eicar"]\n'),
         ENV, "clamav__custom_signatures[0]", "a ClamAV hash signature (.hdb) line",
         "write the hash in lower case: 44d88612fea8a8f36de82e1278abb02f:68:Eicar"),
    Case("clamav-signature-with-any-size", env(
        'clamav__custom_signatures: ["44d88612fea8a8f36de82e1278abb02f:*:Eicar"]\n'),
         ENV, "clamav__custom_signatures[0]", "its size in bytes",
         "give the file's size in bytes"),
    Case("dovecot-controller-without-port", env('dovecot__rspamd_controller: "localhost"\n'),
         ENV, "dovecot__rspamd_controller", "HOST:PORT of Rspamd's controller",
         "is not HOST:PORT"),
    Case("dovecot-junk-header-with-a-space", env('dovecot__junk_header: "X Spam"\n'),
         ENV, "dovecot__junk_header", "a header field name", "is not a header field name"),
    Case("dovecot-controller-password-file-relative",
         env('dovecot__rspamd_controller_password_file: "controller.password"\n'),
         ENV, "dovecot__rspamd_controller_password_file", "an absolute path",
         "is not an absolute path"),
    # --- Monitoring (Art. 11.1: roles node_exporter, postfix_exporter, prometheus) ---
    Case("dovecot-metrics-port-out-of-range", env("dovecot__metrics_port: 99000\n"),
         ENV, "dovecot__metrics_port", "0 (off) or a port number",
         "is not 0 (off) or a port number"),
    Case("node-exporter-unit-without-its-suffix",
         env('node_exporter__systemd_units: ["postfix"]\n'),
         ENV, "node_exporter__systemd_units[0]", "a systemd service unit",
         "is not a systemd service unit name"),
    Case("node-exporter-no-unit-at-all", env("node_exporter__systemd_units: []\n"),
         ENV, "node_exporter__systemd_units", "a list (at least 1)", "fewer than the 1 required"),
    Case("node-exporter-textfile-dir-relative",
         env('node_exporter__textfile_dir: "var/lib/prometheus/node-exporter"\n'),
         ENV, "node_exporter__textfile_dir", "an absolute path", "is not an absolute path"),
    Case("postfix-exporter-port-zero", env("postfix_exporter__port: 0\n"),
         ENV, "postfix_exporter__port", "from 1 to 65535", "is not a port number"),
    Case("rspamd-metrics-file-not-prom", env(
        'rspamd__metrics_textfile: "/var/lib/prometheus/node-exporter/rspamd.txt"\n'),
         ENV, "rspamd__metrics_textfile", "a file ending in .prom",
         "the only files the textfile collector reads"),
    Case("rspamd-metrics-every-second", env("rspamd__metrics_interval_sec: 1\n"),
         ENV, "rspamd__metrics_interval_sec", "from 10 to 300", "is outside 10-300"),
    Case("prometheus-retention-in-words", env('prometheus__retention: "90 days"\n'),
         ENV, "prometheus__retention", "a Prometheus duration",
         "is not a Prometheus retention time"),
    Case("prometheus-unknown-exporter", env(
        "prometheus__scrape_hosts:\n"
        '  - {name: mx1, address: "192.0.2.10", exporters: [node, rspamd]}\n'),
         ENV, "prometheus__scrape_hosts[0].exporters[1]", "one of: 'node', 'postfix', 'dovecot'",
         "is not one of the allowed values"),
    Case("prometheus-scrape-host-without-address", env(
        "prometheus__scrape_hosts:\n  - {name: mx1, exporters: [node]}\n"),
         ENV, "prometheus__scrape_hosts[0].address", "a lowercase host name",
         "lacks the key 'address'"),
    Case("prometheus-exporter-port-missing", env(
        "prometheus__exporter_ports: {node: 9100, postfix: 9154}\n"),
         ENV, "prometheus__exporter_ports.dovecot", "a port number", "lacks the key 'dovecot'"),
    Case("prometheus-probe-path-without-slash", env(
        'prometheus__https_probe_path: "mail/config-v1.1.xml"\n'),
         ENV, "prometheus__https_probe_path", "a URL path starting with '/'",
         "is not a URL path"),
    Case("prometheus-cert-warning-of-a-year-and-more", env("prometheus__cert_expiry_days: 400\n"),
         ENV, "prometheus__cert_expiry_days", "from 1 to 365", "is outside 1-365"),
    Case("prometheus-disk-threshold-over-100", env("prometheus__disk_used_percent: 120\n"),
         ENV, "prometheus__disk_used_percent", "a whole percentage from 1 to 100",
         "is not a percentage"),
    # --- Backups (roles/backup): checked even where not applied -------------------------
    Case("backup-schedule-not-a-calendar", env('backup__schedule: "every night"\n'),
         ENV, "backup__schedule", "a systemd calendar event (OnCalendar=",
         "is not a systemd calendar expression"),
    Case("backup-schedule-in-capitals", env('backup__schedule: "Daily"\n'),
         ENV, "backup__schedule", "a shorthand such as daily", "has capitals; write 'daily'"),
    Case("backup-compression-unknown", env('backup__compression: "gzip"\n'),
         ENV, "backup__compression", "none, lz4, zstd[,1-22]",
         "is not a borg compression spec"),
    Case("backup-max-age-zero", env("backup__max_age_hours: 0\n"),
         ENV, "backup__max_age_hours", "a whole number from 1 to 744", "is outside 1-744"),
    Case("backup-server-address-with-a-space", env('backup__server_address: "backup one"\n'),
         ENV, "backup__server_address", "the address the store hosts reach the backup host at"),
    Case("backup-passphrase-file-relative",
         env('backup__passphrase_file: "secrets/lab/backup-passphrase"\n'),
         ENV, "backup__passphrase_file", "an absolute path",
         "is not an absolute path"),
    Case("backup-quota-in-words", env('backup__repository_quota: "half the disk"\n'),
         ENV, "backup__repository_quota", "a size with an optional K, M, G, T or P suffix",
         "is not a borg storage quota"),
    Case("backup-metrics-file-not-prom",
         env('backup__metrics_textfile: "/var/lib/prometheus/node-exporter/backup.txt"\n'),
         ENV, "backup__metrics_textfile", "a file ending in .prom",
         "the only files the textfile collector reads"),
    Case("backup-client-not-a-host-name", env('backup__clients: ["mail 1"]\n'),
         ENV, "backup__clients[0]", "a host name of the inventory's hosts.yml",
         "is not an inventory host name"),
    Case("site-yml-unknown-role", lambda p: p.write("site.yml", """
        - name: Base
          hosts: all
          roles:
            - role: comon
    """), "site.yml", "", "", "play 1 (Base) applies the role 'comon', which has no directory roles/comon/"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_setting_is_reported_with_file_key_and_allowed_form(
    project: Project, case: Case
) -> None:
    case.setup(project)
    with pytest.raises(SettingsError) as caught:
        load_inventory(project.inventory, root=project.root)
    report = str(caught.value)
    assert case.file in report
    assert case.key in report
    assert case.allowed in report
    assert case.message in report
    matching = [
        issue for issue in caught.value.errors
        if issue.where.startswith(case.file) and (not case.key or issue.key == case.key)
    ]
    assert matching, f"no structured error for {case.file} {case.key}:\n{report}"
    assert case.allowed in matching[0].allowed
    assert case.message in matching[0].message


def test_every_problem_of_every_host_is_reported_at_once(project: Project) -> None:
    project.write(ENV, 'common__sshd_port: 0\ncommon__timezon: "UTC"\n')
    project.write("inventories/t/host_vars/backup1.yml", 'common__apt_proxy: "gopher://x"\n')
    with pytest.raises(SettingsError) as caught:
        load_inventory(project.inventory, root=project.root)
    errors = {(e.key, e.hosts) for e in caught.value.errors}
    assert errors == {
        ("common__sshd_port", ()),  # every host: not listed
        ("common__timezon", ()),
        ("common__apt_proxy", ("backup1",)),
    }
    assert "    hosts: backup1" in str(caught.value)
    assert str(caught.value).startswith("settings of inventory t are invalid: 3 problems")


def test_a_problem_shows_the_bad_value(project: Project) -> None:
    project.write(ENV, 'common__unattended_upgrades_reboot_time: "25:00"\n')
    with pytest.raises(SettingsError) as caught:
        load_host(project.inventory, "mx1", root=project.root)
    (issue,) = caught.value.errors
    assert issue == SettingsIssue(
        file=ENV, key="common__unattended_upgrades_reboot_time", value="25:00",
        message="is not a time of day",
        allowed="a time of day HH:MM on the 24-hour clock, from 00:00 to 23:59, e.g. 03:30",
        line=1,
    )
    assert f"{ENV}:1: common__unattended_upgrades_reboot_time = '25:00'" in str(issue)


def test_an_unknown_host_or_inventory_is_reported(project: Project) -> None:
    with pytest.raises(SettingsError, match=r"has no host 'mx9'[\s\S]*one of: mx1, backup1"):
        load_host(project.inventory, "mx9", root=project.root)
    with pytest.raises(SettingsError, match="inventory 'nowhere' not found"):
        load_host("nowhere", "mx1", root=project.root)


def test_check_command_prints_ok_or_the_report_and_exits_2(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["settings", "--root", str(project.root), "check", "--inventory",
            str(project.inventory)]
    assert main(args) == 0
    assert capsys.readouterr().out == "settings OK: 2 hosts\n"
    project.write(ENV, 'common__apt_proxy: "ftp://x"\n')
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{ENV}:1: common__apt_proxy = 'ftp://x'" in err


def test_show_command_prints_yaml_of_one_key_with_its_origin(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write(ENV, 'common__apt_proxy: "http://192.0.2.5:3142"\n')
    args = ["settings", "--root", str(project.root), "show", "--inventory",
            str(project.inventory), "--host", "mx1", "--origins", "common__apt_proxy"]
    assert main(args) == 0
    assert capsys.readouterr().out == (
        f"# {ENV}:1 (inventory group_vars/all)\ncommon__apt_proxy: http://192.0.2.5:3142\n"
    )
    assert main([*args[:-1], "common__apt_prox"]) == 2
    assert "did you mean common__apt_proxy?" in capsys.readouterr().err


# --- Filtering: what only shows when the MX and store roles meet ----------------------

#: The roles of an MX host that is also the store, in site.yml's order.
FILTER_SITE = """
- hosts: all
  roles: [common]
- hosts: mail_mx:mail_store
  roles: [pki, userdb]
- hosts: mail_mx
  roles: [redis, clamav, rspamd]
- hosts: mail_mx
  roles: [postfix]
- hosts: mail_store
  roles: [dovecot]
"""

#: ClamAV needs a source of signatures; the tree's environment has a mirror.
FILTER_ENV = 'clamav__freshclam_private_mirrors: ["http://clamav.example.net"]\n'
FILTER_MX = "inventories/t/group_vars/mail_mx.yml"


@pytest.fixture
def filter_project(project: Project) -> Project:
    """mx1 runs every mail role (the lab's layout); backup1 only the common role."""
    for role in ("pki", "userdb", "redis", "clamav", "rspamd", "postfix", "dovecot"):
        target = project.root / "roles" / role / "defaults"
        target.mkdir(parents=True)
        shutil.copy(ROOT / "roles" / role / "defaults" / "main.yml", target / "main.yml")
    shutil.copy(ROOT / "group_vars" / "mail_mx.yml", project.root / "group_vars" / "mail_mx.yml")
    project.write("site.yml", FILTER_SITE)
    project.write(FILTER_MX, FILTER_ENV)
    return project


FILTER_CASES = [
    Case("clamav-stream-shorter-than-a-message", env("clamav__stream_max_length: 10485760\n"),
         ENV, "clamav__stream_max_length", "at least ",
         "clamd would refuse to scan a larger message"),
    Case("clamav-file-limit-below-a-message", env("clamav__max_file_size: 10485760\n"),
         ENV, "clamav__max_file_size", "at least ",
         "would be passed without a scan"),
    Case("clamav-scan-limit-below-the-file-limit", env("clamav__max_scan_size: 33554432\n"),
         ENV, "clamav__max_scan_size", "at least 67108864",
         "is smaller than clamav__max_file_size = 67108864"),
    Case("clamav-socket-outside-run-clamav", env('clamav__clamd_socket: "/run/clamd.sock"\n'),
         ENV, "clamav__clamd_socket", "a socket in /run/clamav",
         "Debian's clamav-daemon units create only /run/clamav"),
    Case("clamav-without-any-signatures",
         lambda p: p.write(FILTER_MX, "clamav__freshclam_private_mirrors: []\n"),
         FILTER_MX, "clamav__freshclam_private_mirrors", "signatures in clamav__custom_signatures",
         "clamd would have no signatures and could not start"),
    Case("clamav-and-rspamd-name-different-sockets",
         env('clamav__clamd_socket: "/run/clamav/other.ctl"\n'),
         ENV, "clamav__clamd_socket", "the same path in both",
         "differs from rspamd__antivirus_socket"),
    Case("clamd-retries-past-the-start-limit", env("clamav__restart_sec: 120\n"),
         ENV, "clamav__restart_sec", "fewer than 60 seconds",
         "would never reach the start limit"),
    Case("dovecot-learns-from-another-controller",
         env('dovecot__rspamd_controller: "127.0.0.1:11335"\n'),
         ENV, "dovecot__rspamd_controller", "'localhost:11334'",
         "differs from rspamd__controller_bind"),
]


# --- Monitoring: what only shows when the roles of a host meet -----------------------------

MONITOR_SITE = FILTER_SITE + """
- hosts: mail_mx:mail_store:mail_backup
  roles: [node_exporter]
- hosts: mail_backup
  roles: [prometheus]
"""


@pytest.fixture
def monitor_project(filter_project: Project) -> Project:
    """The filtering tree, with the node exporter everywhere and backup1 as the monitor."""
    for role in ("node_exporter", "prometheus"):
        target = filter_project.root / "roles" / role / "defaults"
        target.mkdir(parents=True)
        shutil.copy(ROOT / "roles" / role / "defaults" / "main.yml", target / "main.yml")
    filter_project.write("site.yml", MONITOR_SITE)
    return filter_project


MONITOR_CASES = [
    Case("rspamd-metrics-outside-the-textfile-dir",
         env('rspamd__metrics_textfile: "/var/lib/hopthu/hopthu_filter.prom"\n'),
         ENV, "rspamd__metrics_textfile", "a .prom file in /var/lib/prometheus/node-exporter",
         "the node exporter would never publish"),
    Case("prometheus-probe-timeout-not-below-the-interval",
         env("prometheus__probe_timeout_sec: 30\n"),
         ENV, "prometheus__probe_timeout_sec", "fewer than 30 seconds",
         "Prometheus refuses a scrape timeout longer than the interval"),
    Case("prometheus-host-scraped-twice", env(
        "prometheus__scrape_hosts:\n"
        '  - {name: mx1, address: "192.0.2.10", exporters: [node]}\n'
        '  - {name: mx1, address: "192.0.2.10", exporters: [postfix]}\n'),
         ENV, "prometheus__scrape_hosts[1].name", "each inventory host once", "is listed twice"),
]


@pytest.mark.parametrize("case", MONITOR_CASES, ids=[c.id for c in MONITOR_CASES])
def test_a_monitoring_setting_that_contradicts_another_is_reported(
    monitor_project: Project, case: Case
) -> None:
    case.setup(monitor_project)
    with pytest.raises(SettingsError) as caught:
        load_inventory(monitor_project.inventory, root=monitor_project.root)
    matching = [
        issue for issue in caught.value.errors
        if issue.where.startswith(case.file) and issue.key == case.key
    ]
    assert any(case.message in i.message and case.allowed in i.allowed for i in matching), (
        f"no error for {case.file} {case.key} saying {case.message!r}:\n{caught.value}"
    )


def test_the_monitoring_tree_is_valid_as_it_stands(monitor_project: Project) -> None:
    hosts = load_inventory(monitor_project.inventory, root=monitor_project.root)
    assert "node_exporter" in hosts["mx1"].roles
    assert {"node_exporter", "prometheus"} <= set(hosts["backup1"].roles)


@pytest.mark.parametrize("case", FILTER_CASES, ids=[c.id for c in FILTER_CASES])
def test_a_filtering_setting_that_contradicts_another_role_is_reported(
    filter_project: Project, case: Case
) -> None:
    case.setup(filter_project)
    with pytest.raises(SettingsError) as caught:
        load_inventory(filter_project.inventory, root=filter_project.root)
    matching = [
        issue for issue in caught.value.errors
        if issue.where.startswith(case.file) and issue.key == case.key
    ]
    assert any(case.message in i.message and case.allowed in i.allowed for i in matching), (
        f"no error for {case.file} {case.key} saying {case.message!r}:\n{caught.value}"
    )


# --- Backups: what only shows when a store and its backup host meet -------------------

#: A store (mx1, also the MX: the lab's layout) and a backup host, in site.yml's order.
BACKUP_SITE = """
- hosts: all
  roles: [common]
- hosts: mail_mx:mail_store:mail_backup
  roles: [node_exporter]
- hosts: mail_store:mail_backup
  roles: [backup]
"""
STORE_ENV = "inventories/t/group_vars/mail_store.yml"
BACKUP_DEFAULTS = "roles/backup/defaults/main.yml"


@pytest.fixture
def backup_project(project: Project) -> Project:
    """mx1 backs up to backup1, with the ministry's policy for both groups; both run the
    node exporter, whose textfile directory receives the last backup."""
    for role in ("node_exporter", "backup"):
        target = project.root / "roles" / role / "defaults"
        target.mkdir(parents=True)
        shutil.copy(ROOT / "roles" / role / "defaults" / "main.yml", target / "main.yml")
    for group in ("mail_store", "mail_backup"):
        shutil.copy(ROOT / "group_vars" / f"{group}.yml", project.root / "group_vars" / f"{group}.yml")
    project.write("site.yml", BACKUP_SITE)
    project.write(STORE_ENV, 'backup__server_address: "192.0.2.20"\n')
    return project


BACKUP_CASES = [
    Case("backup-store-without-the-backup-hosts-address",
         lambda p: p.write(STORE_ENV, "---\n"),
         BACKUP_DEFAULTS, "backup__server_address", "the address the store reaches it at",
         "is empty on a store host that backs itself up"),
    Case("backup-host-that-backs-itself-up",
         lambda p: p.write("inventories/t/group_vars/mail_backup.yml",
                           "backup__client_enabled: true\n"
                           'backup__server_address: "192.0.2.20"\n'
                           'backup__server_host: "backup1"\n'),
         "group_vars/mail_backup.yml", "backup__server_enabled", "a separate host in group "
         "mail_backup", "a store's backups must live on another host"),
    Case("backup-retention-keeps-nothing",
         lambda p: p.write("inventories/t/group_vars/mail_backup.yml",
                           "backup__keep_daily: 0\nbackup__keep_weekly: 0\n"
                           "backup__keep_monthly: 0\n"),
         "inventories/t/group_vars/mail_backup.yml", "backup__keep_daily",
         "at least one of backup__keep_daily", "the retention would keep no archive at all"),
    Case("backup-metrics-outside-the-textfile-dir",
         lambda p: p.write(STORE_ENV, 'backup__server_address: "192.0.2.20"\n'
                                      'backup__metrics_textfile: "/var/lib/hopthu/backup.prom"\n'),
         STORE_ENV, "backup__metrics_textfile",
         "a .prom file in /var/lib/prometheus/node-exporter",
         "BackupTooOld could not fire"),
]


@pytest.mark.parametrize("case", BACKUP_CASES, ids=[c.id for c in BACKUP_CASES])
def test_a_backup_setting_that_leaves_a_store_without_backups_is_reported(
    backup_project: Project, case: Case
) -> None:
    case.setup(backup_project)
    with pytest.raises(SettingsError) as caught:
        load_inventory(backup_project.inventory, root=backup_project.root)
    matching = [
        issue for issue in caught.value.errors
        if issue.where.startswith(case.file) and issue.key == case.key
    ]
    assert any(case.message in i.message and case.allowed in i.allowed for i in matching), (
        f"no error for {case.file} {case.key} saying {case.message!r}:\n{caught.value}"
    )


def test_the_backup_tree_is_valid_as_it_stands(backup_project: Project) -> None:
    hosts = load_inventory(backup_project.inventory, root=backup_project.root)
    assert hosts["mx1"].values["backup__server_host"] == "backup1"
    assert hosts["backup1"].values["backup__clients"] == ["mx1"]
    assert "node_exporter" in hosts["mx1"].roles


def test_the_filtering_tree_is_valid_as_it_stands(filter_project: Project) -> None:
    hosts = load_inventory(filter_project.inventory, root=filter_project.root)
    assert {"clamav", "rspamd", "dovecot"} <= set(hosts["mx1"].roles)


def test_spam_learning_is_refused_on_a_store_without_rspamd(filter_project: Project) -> None:
    filter_project.write("inventories/t/hosts.yml", SPLIT_HOSTS)
    filter_project.write("inventories/t/group_vars/mail_store.yml", """
        dovecot__postfix_local: false
        dovecot__lmtp_port: 24
    """)
    filter_project.write(FILTER_MX, FILTER_ENV + """
        userdb__passwords_enabled: false
        postfix__dovecot_lmtp: "inet:store1.moj.gov.vn:24"
        postfix__dovecot_sasl_path: "inet:store1.moj.gov.vn:12345"
        postfix__dovecot_quota_status: ""
    """.replace("        ", ""))
    with pytest.raises(SettingsError) as caught:
        load_inventory(filter_project.inventory, root=filter_project.root)
    (issue,) = [i for i in caught.value.errors if i.key == "dovecot__spam_learning"]
    assert issue.hosts == ("store1",)
    assert "rspamc" in issue.message and "false on a store-only host" in issue.allowed
    filter_project.write("inventories/t/group_vars/mail_store.yml", """
        dovecot__postfix_local: false
        dovecot__lmtp_port: 24
        dovecot__spam_learning: false
    """)
    load_inventory(filter_project.inventory, root=filter_project.root)
