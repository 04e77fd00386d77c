"""The value types of hopthu's settings, each with the form it allows in words.

A type here is an `Annotated` str or int with one check and one `Form`. The
check raises `ValueError` with what is wrong with the value; the `Form` says
what is allowed. Both end up in the error an operator reads ("the file, the
key, the value and the allowed form", STYLE.md habit 9) and the form also in
the roles' generated `meta/argument_specs.yml`.

Checks never change a value: what the loader resolved is what the templates
get, so a URL keeps its exact spelling (no added trailing slash) and a
network stays a string.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator


@dataclass(frozen=True)
class Form:
    """What a value must look like, in words."""

    text: str


def checked(base: type, form: str, check: Callable[[Any], None]) -> Any:
    def validate(value: Any) -> Any:
        check(value)
        return value

    return Annotated[base, AfterValidator(validate), Form(form)]


# --- Text ---------------------------------------------------------------------------


def _nfc(value: str) -> None:
    # Art. 9: Vietnamese in Unicode per TCVN 6909, stored precomposed (NFC).
    # An NFD "Hà Nội" looks the same on screen but compares, sorts and
    # greps differently, so it is refused with the form to write instead.
    if not unicodedata.is_normalized("NFC", value):
        nfc = unicodedata.normalize("NFC", value)
        raise ValueError(
            f"is not in Unicode NFC (it has decomposed accents: {value!a}); "
            f"write the NFC form {nfc!r} ({nfc!a})"
        )


Text = checked(
    str, "Unicode text in NFC (precomposed) form, as TCVN 6909 requires (Art. 9)", _nfc
)

# --- Names ----------------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _dns_name(value: str, *, need_dot: bool) -> None:
    if value != value.strip() or not value:
        raise ValueError("is empty or has spaces around it")
    if not value.isascii():
        try:
            a_label = value.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("has characters that are not valid in a domain name") from None
        raise ValueError(f"is not ASCII; write its IDNA A-label form {a_label!r}")
    if value != value.lower():
        raise ValueError(f"has capital letters; write {value.lower()!r}")
    if value.endswith("."):
        raise ValueError(f"ends with a dot; write {value.rstrip('.')!r}")
    if len(value) > 253:
        raise ValueError("is longer than 253 characters")
    labels = value.split(".")
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(
                f"has the label {label!r}, which is not an RFC 1123 label "
                f"(1-63 of a-z, 0-9 and '-', not starting or ending with '-')"
            )
    if need_dot and len(labels) < 2:
        raise ValueError("has no dot: a domain name needs at least two labels")
    if labels[-1].isdigit():
        raise ValueError("ends in an all-numeric label (is it an IP address?)")


def _domain(value: str) -> None:
    _dns_name(value, need_dot=True)


def check_zone(value: str) -> None:
    _dns_name(value, need_dot=False)


def _forward_zone(value: str) -> None:
    if value != ".":
        _dns_name(value, need_dot=False)


DomainName = checked(
    str,
    "a lowercase domain name of RFC 1123 labels (a-z, 0-9, '-') with at least one dot, "
    "e.g. mail.example.org",
    _domain,
)
DnsZone = checked(
    str,
    "a lowercase DNS zone name of RFC 1123 labels (a-z, 0-9, '-'), e.g. test or example.org",
    check_zone,
)
def _trust_anchor(value: str) -> None:
    import base64
    import binascii

    fields = value.split()
    if len(fields) < 4 or fields[1] not in ("DNSKEY", "DS"):
        raise ValueError("is not a DNSKEY or DS record")
    if not fields[0].endswith("."):
        raise ValueError("does not start with an absolute zone name (ending in '.')")
    check_zone(fields[0].rstrip("."))
    if fields[1] == "DNSKEY":
        if len(fields) < 5 or not all(f.isdigit() for f in fields[2:5]):
            raise ValueError("is not a DNSKEY record: flags, protocol and algorithm are numbers")
        try:
            base64.b64decode("".join(fields[5:]), validate=True)
        except binascii.Error:
            raise ValueError("has a key that is not base64") from None
        if len(fields) < 6:
            raise ValueError("has no key")
    elif len(fields) < 6 or not all(f.isdigit() for f in fields[2:5]) or not all(
        c in "0123456789abcdefABCDEF" for c in "".join(fields[5:])
    ):
        raise ValueError("is not a DS record: key tag, algorithm, digest type, hex digest")


TrustAnchor = checked(
    str,
    "a DNSKEY or DS record in zone-file form, e.g. 'example.org. DNSKEY 257 3 15 <base64 key>'",
    _trust_anchor,
)
ForwardZoneName = checked(
    str,
    "a lowercase DNS zone name of RFC 1123 labels, e.g. example.org, or '.' for every zone",
    _forward_zone,
)


def _address(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address") from None


IPAddress = checked(str, "an IPv4 or IPv6 address, e.g. 192.0.2.53 or 2001:db8::53", _address)


def _host(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        _dns_name(value, need_dot=True)


HostName = checked(
    str, "a lowercase host name with at least one dot, or an IP address, e.g. ntp.example.org",
    _host,
)


def _cidr(value: str) -> None:
    if "/" not in value:
        raise ValueError("has no prefix length: write the network as ADDRESS/PREFIX")
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"is not a network in CIDR notation ({exc})") from None
        raise ValueError(f"has host bits set; did you mean {str(network)!r}?") from None


Cidr = checked(
    str,
    "a network in CIDR notation with the host bits zero, e.g. 10.0.0.0/8 or 2001:db8::/32",
    _cidr,
)

_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _group(value: str) -> None:
    if not _GROUP.match(value):
        raise ValueError("is not a valid Ansible group name")


GroupName = checked(
    str, "an Ansible group name: letters, digits and '_', not starting with a digit", _group
)

_SERVICE = re.compile(r"^[a-z][a-z0-9-]*$")


def _service(value: str) -> None:
    if not _SERVICE.match(value):
        raise ValueError("is not a service name")


ServiceName = checked(
    str, "a service name: lowercase letters, digits and '-', starting with a letter, e.g. smtp",
    _service,
)

# Debian Policy 5.6.1: at least two characters, lowercase letters, digits,
# '+', '-' and '.', starting with a letter or digit.
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def _package(value: str) -> None:
    if not _PACKAGE.match(value):
        hint = f"; write {value.lower()!r}" if _PACKAGE.match(value.lower()) else ""
        raise ValueError(f"is not a Debian package name{hint}")


DebianPackage = checked(
    str,
    "a Debian package name: at least two of a-z, 0-9, '+', '-' and '.', starting with a "
    "letter or digit (Debian Policy 5.6.1), e.g. openssh-server",
    _package,
)

_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _user(value: str) -> None:
    if not _USER.match(value):
        raise ValueError("is not a user name")


UnixUser = checked(
    str,
    "a user name: 1-32 of a-z, 0-9, '_' and '-', starting with a letter or '_', e.g. ops",
    _user,
)


def _recipient(value: str) -> None:
    if value == "":
        return
    if "@" in value:
        local, _, domain = value.rpartition("@")
        if not local or any(c.isspace() for c in local):
            raise ValueError("has an empty or blank local part")
        _dns_name(domain, need_dot=True)
    else:
        _user(value)


MailRecipient = checked(
    str,
    '"" (nobody), a local user such as root, or a mail address such as ops@example.org',
    _recipient,
)


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


_TZ = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")


def _timezone(value: str) -> None:
    if not _TZ.match(value):
        raise ValueError("is not an IANA time zone name")
    # Without a tz database on the controller only the form can be checked.
    if _zones() and value not in _zones():
        raise ValueError("is not in the IANA time zone database")


Timezone = checked(str, "an IANA time zone name, e.g. Asia/Ho_Chi_Minh or UTC", _timezone)

# --- Network values -------------------------------------------------------------------


def _port(value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError("is not a port number")


Port = checked(int, "a port number, a whole number from 1 to 65535", _port)

_PORT_SPEC = re.compile(r"^(tcp|udp)/([0-9]{1,5})$")


def _port_spec(value: str) -> None:
    match = _PORT_SPEC.match(value)
    if not match:
        raise ValueError("is not PROTOCOL/PORT")
    if not 1 <= int(match.group(2)) <= 65535:
        raise ValueError("has a port outside 1-65535")


PortSpec = checked(
    str, "'tcp/PORT' or 'udp/PORT' with PORT from 1 to 65535, e.g. tcp/25", _port_spec
)


def _url(value: str) -> None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"has the scheme {parts.scheme!r}" if parts.scheme else "has no scheme")
    if not parts.hostname:
        raise ValueError("has no host")
    if port == 0:
        raise ValueError("has port 0")
    if any(c.isspace() for c in value):
        raise ValueError("contains spaces")


def _optional_url(value: str) -> None:
    if value != "":
        _url(value)


HttpUrl = checked(
    str, "an http:// or https:// URL with a host, e.g. http://deb.debian.org/debian", _url
)
OptionalHttpUrl = checked(
    str,
    '"" (none) or an http:// or https:// URL with a host, e.g. http://198.18.0.1:3142',
    _optional_url,
)

# --- Time and sizes -------------------------------------------------------------------

_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _clock(value: str) -> None:
    if not _CLOCK.match(value):
        raise ValueError("is not a time of day")


ClockTime = checked(
    str, "a time of day HH:MM on the 24-hour clock, from 00:00 to 23:59, e.g. 03:30", _clock
)

# journald.conf(5): sizes in bytes with the base-1024 suffixes K, M, G, T, P, E.
_SIZE = re.compile(r"^[0-9]+[KMGTPE]?$")


def _size(value: str) -> None:
    if not _SIZE.match(value):
        raise ValueError("is not a journald size")


JournaldSize = checked(
    str,
    "a size in journald.conf(5) syntax: a whole number with an optional K, M, G, T, P or E "
    "suffix (base 1024), e.g. 500M or 2G",
    _size,
)

# systemd.time(7) time spans: "1year", "6month", "2weeks", "1h 30min".
_UNITS = (
    "usec|us|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|"
    "days|day|d|weeks|week|w|months|month|M|years|year|y"
)
_SPAN = re.compile(rf"^[0-9]+ ?({_UNITS})( ?[0-9]+ ?({_UNITS}))*$")


def _span(value: str) -> None:
    if not _SPAN.match(value):
        raise ValueError("is not a systemd time span")


JournaldTimespan = checked(
    str,
    "a time span in systemd.time(7) syntax: numbers with units such as min, h, day, week, "
    "month or year, e.g. 1year or 6month",
    _span,
)

# --- systemd's restart policy (Art. 11.1) ---------------------------------------------


def _whole_range(low: int, high: int) -> Callable[[int], None]:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"is outside {low}-{high}")

    return check


# 0 would restart at once (systemd's 100 ms at most), faster than any cause of
# a crash goes away; over 5 minutes a killed daemon stays down too long.
RestartSeconds = checked(
    int,
    "a whole number of seconds from 1 to 300: how long systemd waits before it starts a "
    "daemon that died again (RestartSec=), e.g. 5",
    _whole_range(1, 300),
)
StartLimitBurst = checked(
    int,
    "a whole number from 1 to 100: how many starts systemd allows a unit within the start "
    "limit interval before it gives up (StartLimitBurst=), e.g. 10",
    _whole_range(1, 100),
)
# 0 would turn the start limit off, and a daemon that fails at every start
# would be restarted forever.
StartLimitInterval = checked(
    int,
    "a whole number of seconds from 60 to 86400 (one day): the window the start limit "
    "counts starts in (StartLimitIntervalSec=), e.g. 600",
    _whole_range(60, 86400),
)
