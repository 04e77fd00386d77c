"""Value types of the mail roles' settings (pki, userdb, postfix, dovecot).

Like `hopthu.schema.types`, each type is an `Annotated` value with one check
and the allowed form in words (`Form`), so an operator's error names what is
wrong and what to write instead.
"""

from __future__ import annotations

import posixpath
import re

from hopthu.schema.types import _dns_name, checked

# --- Paths ----------------------------------------------------------------------------


def _absolute_path(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError("is not an absolute path (it must start with '/')")
    if value != "/" and value.endswith("/"):
        raise ValueError(f"ends with '/'; write {value.rstrip('/')!r}")
    if posixpath.normpath(value) != value:
        raise ValueError(f"is not in normal form; write {posixpath.normpath(value)!r}")
    if any(c.isspace() for c in value) or any(c in value for c in "'\"\\%$"):
        raise ValueError("has spaces, quotes, '\\', '%' or '$', which the configs cannot carry")


AbsolutePath = checked(
    str,
    "an absolute path in normal form, without spaces, quotes, '%' or '$', "
    "e.g. /etc/hopthu/tls/host.key",
    _absolute_path,
)


def _prom_file(value: str) -> None:
    _absolute_path(value)
    if not value.endswith(".prom"):
        raise ValueError("does not end in .prom, the only files the textfile collector reads")


#: A file for the node exporter's textfile collector (roles/node_exporter),
#: which reads only *.prom files: the rspamd role's filter health, the
#: backup tool's last run.
PromFile = checked(
    str,
    "an absolute path of a file ending in .prom, e.g. "
    "/var/lib/prometheus/node-exporter/hopthu_filter.prom",
    _prom_file,
)


def _optional_path(value: str) -> None:
    if value != "":
        _absolute_path(value)


OptionalPath = checked(
    str,
    '"" (none) or an absolute path in normal form, e.g. /etc/hopthu/provided/host.key',
    _optional_path,
)

# --- URLs -----------------------------------------------------------------------------


def _crl_url(value: str) -> None:
    # The same check hopthu.pki applies before it puts the URL into a
    # certificate (imported here only when a value is checked: it loads
    # `cryptography`).
    from hopthu.pki import crl_url_problem

    problem = crl_url_problem(value)
    if problem:
        raise ValueError(problem)


CrlUrl = checked(
    str,
    "a plain http:// URL (not https://: a client fetches a CRL before it can trust TLS) with "
    "an ASCII host and a file path, e.g. http://pki.moj.gov.vn/hopthu-ca.crl",
    _crl_url,
)

# --- Mail addresses ---------------------------------------------------------------------

# RFC 5321 §4.1.2 Dot-string in lower case: the user database stores every
# address in one spelling so that Postfix's and Dovecot's lookups agree.
# SMTPUTF8 is not offered (roles/postfix/README.md), so local parts are ASCII.
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def _mail_address(value: str) -> None:
    local, sep, domain = value.rpartition("@")
    if not sep or not local:
        raise ValueError("is not an address of the form local-part@domain")
    if not value.isascii():
        raise ValueError(
            "is not ASCII: the mail system refuses SMTPUTF8 addresses (roles/postfix/README.md); "
            "write the local part in ASCII, e.g. nguyen.van.an"
        )
    if value != value.lower():
        raise ValueError(f"has capital letters; write {value.lower()!r}")
    if len(local) > 64:
        raise ValueError("has a local part longer than 64 characters (RFC 5321 §4.5.3.1.1)")
    if not _LOCAL.match(local):
        raise ValueError(
            f"has the local part {local!r}, which is not an RFC 5321 dot-string "
            "(letters, digits and !#$%&'*+/=?^_`{|}~- in dot-separated words)"
        )
    _dns_name(domain, need_dot=True)


MailAddress = checked(
    str,
    "a lower-case ASCII mail address local-part@domain (RFC 5321 dot-string), "
    "e.g. nguyen.van.an@moj.gov.vn",
    _mail_address,
)

# --- Postfix endpoints --------------------------------------------------------------------

_ENDPOINT = re.compile(r"^(unix:private/[a-z0-9._-]+|inet:[a-z0-9.-]+:[0-9]{1,5})$")


def _endpoint(value: str) -> None:
    if not _ENDPOINT.match(value):
        raise ValueError("is not a Postfix client endpoint")
    if value.startswith("inet:") and not 1 <= int(value.rsplit(":", 1)[1]) <= 65535:
        raise ValueError("has a port outside 1-65535")


PostfixEndpoint = checked(
    str,
    "unix:private/NAME (a socket in Postfix's queue directory, on a host that runs both "
    "Postfix and Dovecot) or inet:HOST:PORT (another host), e.g. unix:private/dovecot-lmtp "
    "or inet:store1.moj.gov.vn:24",
    _endpoint,
)


def _optional_endpoint(value: str) -> None:
    if value != "":
        _endpoint(value)


OptionalPostfixEndpoint = checked(
    str,
    '"" (off), unix:private/NAME or inet:HOST:PORT, e.g. unix:private/quota-status',
    _optional_endpoint,
)

_SASL_PATH = re.compile(r"^(private/[a-z0-9._-]+|inet:[a-z0-9.-]+:[0-9]{1,5})$")


def _sasl_path(value: str) -> None:
    if not _SASL_PATH.match(value):
        raise ValueError("is not a Postfix smtpd_sasl_path for Dovecot")


SaslPath = checked(
    str,
    "private/NAME (Dovecot's auth socket in Postfix's queue directory) or inet:HOST:PORT, "
    "e.g. private/auth",
    _sasl_path,
)

# --- Sizes ------------------------------------------------------------------------------


def _bytes(value: int) -> None:
    if value < 0:
        raise ValueError("is negative")


Bytes = checked(int, "a whole number of bytes, 0 or more, e.g. 52428800 for 50 MiB", _bytes)


def _percent(value: int) -> None:
    if not 1 <= value <= 100:
        raise ValueError("is not a percentage from 1 to 100")


Percent = checked(int, "a whole percentage from 1 to 100, e.g. 80", _percent)


def _id(value: int) -> None:
    if not 100 <= value <= 59999:
        raise ValueError("is outside 100-59999 (system and static ids, below Debian's nobody)")


StaticId = checked(
    int,
    "a fixed numeric user or group id from 100 to 59999, the same on every host, e.g. 5000",
    _id,
)

# --- Services ----------------------------------------------------------------------------

_UNIT = re.compile(r"^[A-Za-z0-9:_.@-]+\.service$")


def _unit(value: str) -> None:
    if not _UNIT.match(value):
        raise ValueError("is not a systemd service unit name")


ServiceUnit = checked(str, "a systemd service unit, e.g. postfix.service", _unit)
