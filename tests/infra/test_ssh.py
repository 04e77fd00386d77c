"""SSH: the only way in for operators, so keys only, strong algorithms (Art. 11.5).

The checks read sshd's effective configuration (``sshd -T``), which is what
the daemon does after every include and default, not the text of the files.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

#: Algorithms no hardened sshd offers (ssh-audit's "fail" and "warn" lists):
#: CBC modes and RC4, MD5/SHA-1 MACs and 64-bit tags, SHA-1 key exchanges,
#: DSA and SHA-1 RSA signatures.
WEAK = {
    "ciphers": ("cbc", "arcfour", "3des", "blowfish", "cast128", "rijndael"),
    "macs": ("hmac-md5", "hmac-sha1", "umac-64", "hmac-ripemd160", "-96"),
    "kexalgorithms": (
        "diffie-hellman-group1-sha1",
        "diffie-hellman-group14-sha1",
        "diffie-hellman-group-exchange-sha1",
        "rsa1024-sha1",
        "gss-gex-sha1-",
        "gss-group1-sha1-",
        "gss-group14-sha1-",
    ),
    "hostkeyalgorithms": ("ssh-dss", "ssh-rsa", "ssh-rsa-cert-v01@openssh.com"),
    "pubkeyacceptedalgorithms": ("ssh-dss", "ssh-rsa", "ssh-rsa-cert-v01@openssh.com"),
}
#: Names that must match exactly (ssh-rsa is weak; rsa-sha2-512 is not).
EXACT = {"ssh-dss", "ssh-rsa", "ssh-rsa-cert-v01@openssh.com"}

#: sshd -T prints the first alias of a value.
ROOT_LOGIN_ALIASES = {"without-password": "prohibit-password"}


def sshd_effective(host: Any) -> dict[str, list[str]]:
    """``sshd -T`` as keyword -> values (a keyword may repeat, e.g. allowusers)."""
    result = host.run("/usr/sbin/sshd -T")
    assert result.rc == 0, (
        f"`sshd -T` failed on the host (exit {result.rc}): {result.stderr.strip()}\n"
        "The sshd configuration does not parse: fix the template and redeploy "
        "(the role must check it with `sshd -t` before reloading)."
    )
    effective: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        effective.setdefault(key.lower(), []).append(value.strip())
    return effective


@pytest.fixture(scope="module")
def sshd(host: Any) -> dict[str, list[str]]:
    return sshd_effective(host)


def one(sshd: dict[str, list[str]], key: str) -> str:
    assert key in sshd, f"`sshd -T` prints no {key!r}: is this OpenSSH 8.7 or later?"
    return sshd[key][-1]


@pytest.mark.control("ART11-5-HARDEN")
@pytest.mark.control("ART11-5-AUTH")
def test_sshd_refuses_passwords(sshd: dict[str, list[str]]) -> None:
    wrong = {
        key: one(sshd, key)
        for key in ("passwordauthentication", "kbdinteractiveauthentication",
                    "permitemptypasswords")
        if one(sshd, key) != "no"
    }
    assert not wrong, (
        f"sshd accepts secrets that can be guessed: {wrong}. Operators log in with keys "
        "only: set PasswordAuthentication, KbdInteractiveAuthentication and "
        "PermitEmptyPasswords to no in the common role's sshd_config template."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_sshd_root_login_is_as_configured(
    sshd: dict[str, list[str]], settings: dict[str, Any]
) -> None:
    expected = settings["common__sshd_permit_root_login"]
    actual = one(sshd, "permitrootlogin")
    actual = ROOT_LOGIN_ALIASES.get(actual, actual)
    assert actual == expected, (
        f"sshd's PermitRootLogin is {actual!r}, the settings say {expected!r} "
        "(common__sshd_permit_root_login): redeploy the common role, or look for a "
        "drop-in in /etc/ssh/sshd_config.d/ that overrides it."
    )


@pytest.mark.control("ART11-5-HARDEN")
@pytest.mark.parametrize("keyword", sorted(WEAK))
def test_sshd_offers_no_weak_algorithms(sshd: dict[str, list[str]], keyword: str) -> None:
    key = keyword
    if key == "pubkeyacceptedalgorithms" and key not in sshd:
        key = "pubkeyacceptedkeytypes"  # OpenSSH before 8.5
    offered = one(sshd, key).split(",")
    weak = [
        alg for alg in offered
        if any((alg == bad) if bad in EXACT else (bad in alg) for bad in WEAK[keyword])
    ]
    assert not weak, (
        f"sshd offers weak {keyword}: {', '.join(weak)}. List only strong algorithms in "
        f"the common role's sshd_config template ({keyword} is the option name); "
        "ssh-audit's hardening guide for the Debian release gives the list."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_sshd_listens_on_the_configured_port(
    host: Any, sshd: dict[str, list[str]], settings: dict[str, Any]
) -> None:
    expected = int(settings["common__sshd_port"])
    ports = sorted({int(p) for p in sshd.get("port", [])})
    assert ports == [expected], (
        f"sshd is configured for port(s) {ports}, the settings say {expected} "
        "(common__sshd_port): redeploy the common role."
    )
    assert host.socket(f"tcp://{expected}").is_listening, (
        f"nothing listens on TCP port {expected} on all addresses although sshd is "
        "configured for it: check `systemctl status ssh` and ListenAddress."
    )


@pytest.mark.control("ART11-5-ACCESS")
@pytest.mark.control("ART11-5-HARDEN")
def test_sshd_lets_in_only_the_configured_users(
    sshd: dict[str, list[str]], settings: dict[str, Any]
) -> None:
    expected = sorted(settings["common__sshd_allow_users"] or [])
    actual = sorted(u for line in sshd.get("allowusers", []) for u in line.split())
    assert actual == expected, (
        f"sshd's AllowUsers is {actual or 'unset (any user with a key)'}, the settings "
        f"say {expected or 'unset'} (common__sshd_allow_users): redeploy the common role."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_sshd_logs_the_key_of_every_login(sshd: dict[str, list[str]]) -> None:
    level = one(sshd, "loglevel").upper()
    assert level in ("VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3"), (
        f"sshd's LogLevel is {level}: at INFO the log does not say which key logged in, so "
        "the audit log cannot tell operators apart. Set LogLevel VERBOSE."
    )


@pytest.mark.control("ART11-5-HARDEN")
@pytest.mark.control("ART11-5-ACCESS")
def test_sshd_forwards_nothing(sshd: dict[str, list[str]]) -> None:
    open_ = {
        key: one(sshd, key)
        for key in ("x11forwarding", "allowtcpforwarding", "allowagentforwarding",
                    "allowstreamlocalforwarding", "permittunnel", "gatewayports")
        if one(sshd, key) not in ("no", "none")
    }
    assert not open_, (
        f"sshd lets logins forward traffic: {open_}. A mail host is administered, not used "
        "as a jump host: turn each of them off in the sshd template."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_sshd_shows_the_legal_notice_before_login(
    host: Any, sshd: dict[str, list[str]], settings: dict[str, Any]
) -> None:
    banner = one(sshd, "banner")
    assert banner not in ("none", ""), (
        "sshd shows no banner before login: set `Banner /etc/issue.net` in the common "
        "role's sshd_config template (Lynis BANN-7126/7130)."
    )
    text = host.file(banner).content_string if host.file(banner).exists else ""
    assert settings["common__login_banner"].strip() in text, (
        f"the banner file {banner} does not carry the notice in common__login_banner: "
        "redeploy the common role."
    )


@pytest.mark.intrusive  # a refused login may count towards a brute-force ban (fail2ban)
@pytest.mark.control("ART11-5-AUTH")
@pytest.mark.control("ART11-5-HARDEN")
def test_sshd_offers_clients_only_public_key_authentication(
    suite: Any, target: Any, host: Any
) -> None:
    # A client that offers no credentials learns which methods the server
    # accepts from the "Permission denied (...)" line. ControlPath=none: a new
    # connection, not the suite's shared one, which is already authenticated.
    result = subprocess.run(
        ["ssh", "-F", str(suite.ssh_config()), "-o", "ControlMaster=no", "-o", "ControlPath=none",
         "-o", "PreferredAuthentications=none", "-o", "BatchMode=yes", target.name, "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    denied = [line for line in result.stderr.splitlines() if "Permission denied" in line]
    assert denied, (
        f"sshd let a client without credentials in, or did not answer: {result.stderr!r}"
    )
    methods = denied[-1].split("(", 1)[-1].rstrip(").").split(",")
    assert methods == ["publickey"], (
        f"sshd offers {methods} to clients; only publickey may be offered: set "
        "AuthenticationMethods publickey and turn password and keyboard-interactive "
        "authentication off."
    )
