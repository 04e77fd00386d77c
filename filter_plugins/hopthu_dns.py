"""The ministry's published DNS records, computed from the settings: one source for all.

Two readers need the same records and must never disagree:

- ``hopthu dns --inventory ENV`` (hopthu/dns.py) prints them for the DNS
  administrator who publishes the ministry's zone;
- the lab's DNS server on peer1 ("the Internet", roles/lab_peer) serves them,
  rendered by ``templates/lab_peer/etc/nsd/zones/ministry.zone.j2``, so the
  lab resolves moj.gov.vn exactly as the real Internet will.

Both call the functions below with the same settings (``hopthu__mail_domain``
and the ``dns__*`` keys, group_vars/README.md), and the zone text comes from
one formatter, ``zone_fragment``: the bytes are the same by construction, and
tests/unit/test_dns.py checks it anyway. hopthu/dns.py loads this very file
through hopthu.render.load_filters, as Ansible loads it as a filter plugin.

What is published for the mail domain, and why (each record cites its RFC):

- MX to every host that has the ``mx`` service, all at one preference: each
  is a full inbound host (RFC 5321 §5.1 spreads the load among equals);
- A/AAAA for every published host;
- SPF for the domain (``v=spf1 mx -all``: only the MX hosts send for it) and
  for each MX host's own name, the identity of its HELO (RFC 7208 §2.3);
- DMARC (RFC 7489), MTA-STS (RFC 8461) with its policy, TLS-RPT (RFC 8460);
- SRV records for mail clients (RFC 6186, RFC 8314 §5.1): implicit TLS
  first; ``_imap``/``_pop3`` point to "." because only implicit TLS is
  offered for mail access (RFC 2782: the service is not available);
- autoconfig/autodiscover names for mail client set-up (Art. 10);
- TLSA ``3 1 1`` for the MX hosts (DANE, RFC 7672 §3.1.1, RFC 7218), when
  the caller passes the certificates' digests: only useful in a
  DNSSEC-signed zone;
- DKIM (RFC 6376): one TXT record per MX host's selector. Each MX host
  makes its own key (roles/rspamd; the private key never leaves the host)
  and every deploy copies the public record to the controller's
  ``dns__dkim_dir`` as ``<selector>._domainkey.<domain>.txt``;
  ``dkim_public_keys`` reads them there for both readers.

Rules, as for every filter here (hopthu_filters.py): no Ansible or hopthu
imports, input read through ``collections.abc``, errors that name the
setting and say what is allowed. The output is deterministic: the order of
the records follows the settings (DKIM records: their selectors, sorted),
and nothing depends on time or the host. Every filter is pure but one:
``dkim_public_keys`` reads the controller's copies of the DKIM public
records, the only input that comes from the hosts. Both engines render on
the controller, so both read the same files; a missing directory (before
the first deploy) gives no keys rather than an error.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The services a published host may offer, and what each publishes.
SERVICES = {
    "mx": "inbound SMTP on 25: MX, SPF of its HELO name, MTA-STS mx line, TLSA",
    "submission": "mail submission on 465 (implicit TLS) and 587 (STARTTLS): SRV",
    "imap": "IMAP over implicit TLS on 993: SRV",
    "pop3": "POP3 over implicit TLS on 995: SRV",
    "web": "HTTPS on 443: MTA-STS policy, autoconfig and autodiscover (one host)",
}

#: Every MX host gets this preference: all are equal (RFC 5321 §5.1).
MX_PREFERENCE = 10

#: RFC 6186 SRV records: (service label, port, priority, the host service).
#: Priorities order the client's choices: implicit TLS before STARTTLS
#: (RFC 8314 §3), IMAP before POP3 (RFC 6186 §3.4: the lower priority of the
#: two is used; Art. 10 wants IMAP IDLE).
SRV_SERVICES = (
    ("_submissions._tcp", 465, 0, "submission"),
    ("_submission._tcp", 587, 10, "submission"),
    ("_imaps._tcp", 993, 0, "imap"),
    ("_pop3s._tcp", 995, 10, "pop3"),
)
#: Services offered only with implicit TLS: their clear-text SRV says "not here".
SRV_NOT_OFFERED = ("_imap._tcp", "_pop3._tcp")

DMARC_POLICIES = ("none", "quarantine", "reject")
MTA_STS_MODES = ("enforce", "testing", "none")
#: RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year).
MTA_STS_MAX_AGE_LIMIT = 31557600
#: RFC 8461 §3.1: the id is 1 to 32 letters and digits.
MTA_STS_ID_LENGTH = 16

#: RFC 1035 §3.3.14: a TXT character-string holds at most 255 octets.
TXT_CHUNK = 255

#: The controller's copy of a DKIM public record is named after the record:
#: ``<selector>._domainkey.<domain>.txt`` in ``dns__dkim_dir``.
DKIM_FILE_INFIX = "._domainkey."
DKIM_FILE_SUFFIX = ".txt"
#: A DKIM key record (RFC 6376 §3.6.1): tags separated by ';', starting with
#: v=DKIM1, with a base64 public key p=.
_DKIM_TAG = re.compile(r"^[a-z][a-z0-9_]*$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_SELECTOR = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DnsRecordError(ValueError):
    """Settings the records cannot be built from; the message says what is allowed."""


# --- DKIM public records from the controller ---------------------------------------------


def dkim_record_value(text: str, where: str) -> str:
    """A DKIM key record's TXT value, checked: one line ``v=DKIM1; k=rsa; p=<base64>``.

    `where` names the source in the error (a file).
    """
    value = text.strip()
    if "\n" in value or not value.isascii():
        raise DnsRecordError(f"{where}: a DKIM record is one line of ASCII, got {value!r}")
    tags: dict[str, str] = {}
    for part in (p.strip() for p in value.split(";")):
        if not part:
            continue
        name, sep, tag_value = (x.strip() for x in part.partition("="))
        if not sep or not _DKIM_TAG.match(name):
            raise DnsRecordError(f"{where}: {part!r} is not a DKIM tag=value (RFC 6376 §3.2)")
        tags[name] = tag_value
    if tags.get("v") != "DKIM1" or not value.startswith("v=") or \
            not _BASE64.match(tags.get("p", "").replace(" ", "")):
        raise DnsRecordError(
            f"{where}: not a DKIM key record; expected one line 'v=DKIM1; k=rsa; p=<base64>' "
            f"as the rspamd role writes it, got {value[:60]!r}"
        )
    return value


def dkim_public_keys(directory: Any, domain: Any) -> dict[str, str]:
    """Filter: selector -> TXT value of every DKIM public record kept for `domain`.

    ``{{ dns__dkim_dir | dns_dkim_keys(hopthu__mail_domain) }}``. Reads the
    files ``<directory>/<selector>._domainkey.<domain>.txt`` that the rspamd
    role copies from the MX hosts. A directory that does not exist yet
    gives no keys; a file that is not a DKIM key record raises
    ``DnsRecordError`` naming it. Sorted by selector.
    """
    domain = _name(domain, "hopthu__mail_domain")
    if not isinstance(directory, str) or not directory.startswith("/"):
        raise DnsRecordError(
            f"dns__dkim_dir: must be an absolute directory on the controller, got {directory!r}"
        )
    folder = Path(directory)
    if not folder.is_dir():
        return {}
    ending = f"{DKIM_FILE_INFIX}{domain}{DKIM_FILE_SUFFIX}"
    found: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(ending) or not path.is_file():
            continue
        selector = path.name[: -len(ending)]
        if not _SELECTOR.match(selector):
            raise DnsRecordError(
                f"{path}: the selector {selector!r} in the name is not one DNS label; name the "
                f"file <selector>{ending}, as the rspamd role does"
            )
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise DnsRecordError(f"{path}: cannot read a DKIM record ({exc})") from None
        found[selector] = dkim_record_value(text, str(path))
    return found


# --- Input checks ---------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise DnsRecordError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _name(value: Any, where: str) -> str:
    name = _text(value, where)
    if name != name.lower() or name.endswith(".") or " " in name or "." not in name:
        raise DnsRecordError(
            f"{where}: {name!r} is not a lowercase domain name without a trailing dot, "
            f"e.g. mail1.moj.gov.vn"
        )
    return name


def _in_domain(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def _address(value: Any, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(_text(value, where))
    except ValueError:
        raise DnsRecordError(f"{where}: {value!r} is not an IPv4 or IPv6 address") from None


def _mailbox(value: Any, where: str) -> str:
    address = _text(value, where)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c in address for c in " ;,!\""):
        raise DnsRecordError(
            f"{where}: {address!r} is not a mail address for reports, e.g. postmaster@moj.gov.vn"
        )
    return address


def _hosts(hosts: Any, domain: str) -> list[dict[str, Any]]:
    """``dns__hosts`` checked: [{host, name, addresses, services}], names unique."""
    where = "dns__hosts"
    if isinstance(hosts, (str, Mapping)) or not isinstance(hosts, Sequence) or not hosts:
        raise DnsRecordError(
            f"{where}: must be a non-empty list of {{host, name, addresses, services}}, "
            f"got {hosts!r}"
        )
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, entry in enumerate(hosts):
        at = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise DnsRecordError(f"{at}: must be a mapping {{host, name, addresses, services}}")
        name = _name(entry.get("name"), f"{at}.name")
        if not _in_domain(name, domain):
            raise DnsRecordError(
                f"{at}.name: {name!r} is not inside the mail domain {domain!r}; the records "
                f"below are published in that zone, so name the host e.g. mail1.{domain}"
            )
        if name in seen:
            raise DnsRecordError(f"{at}.name: {name!r} is listed twice")
        seen.add(name)
        addresses = entry.get("addresses")
        if isinstance(addresses, str) or not isinstance(addresses, Sequence) or not addresses:
            raise DnsRecordError(f"{at}.addresses: must be a non-empty list of IP addresses")
        ips = [_address(a, f"{at}.addresses[{i}]") for i, a in enumerate(addresses)]
        services = entry.get("services")
        if isinstance(services, str) or not isinstance(services, Sequence):
            raise DnsRecordError(f"{at}.services: must be a list, some of {', '.join(SERVICES)}")
        for i, service in enumerate(services):
            if service not in SERVICES:
                raise DnsRecordError(
                    f"{at}.services[{i}]: unknown service {service!r}; one of "
                    f"{', '.join(SERVICES)}"
                )
        checked.append({
            "host": str(entry.get("host", "")),
            "name": name,
            "addresses": ips,
            "services": [str(s) for s in services],
        })
    if not any("mx" in h["services"] for h in checked):
        raise DnsRecordError(f"{where}: no host has the service 'mx'; mail could not arrive")
    web = [h["name"] for h in checked if "web" in h["services"]]
    if len(web) > 1:
        raise DnsRecordError(
            f"{where}: {len(web)} hosts have the service 'web' ({', '.join(web)}); "
            f"autoconfig, autodiscover and mta-sts each name one host: keep 'web' on one"
        )
    return checked


def _choice(value: Any, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        raise DnsRecordError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _seconds(value: Any, where: str, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise DnsRecordError(f"{where}: {value!r} is not a whole number of seconds 1-{upper}")
    return value


# --- Presentation format (RFC 1035 §5.1) ------------------------------------------------


def fqdn(name: str) -> str:
    """An absolute name, as a zone file needs it: with the final dot."""
    return name if name.endswith(".") else name + "."


def txt_rdata(text: str) -> str:
    """A TXT value as quoted character-strings of at most 255 octets each."""
    data = text.encode("ascii")
    chunks = [data[i:i + TXT_CHUNK] for i in range(0, len(data), TXT_CHUNK)] or [b""]
    quoted = []
    for chunk in chunks:
        escaped = chunk.decode("ascii").replace("\\", "\\\\").replace('"', '\\"')
        quoted.append(f'"{escaped}"')
    return " ".join(quoted)


def _record(owner: str, ttl: int, rtype: str, rdata: str) -> dict[str, Any]:
    return {"owner": fqdn(owner), "ttl": ttl, "class": "IN", "type": rtype, "rdata": rdata}


def section(title: str, notes: Sequence[str], records: list[dict[str, Any]],
             commented: bool = False) -> dict[str, Any]:
    return {"title": title, "notes": list(notes), "records": records, "commented": commented}


# --- The records ------------------------------------------------------------------------


def mta_sts_policy(domain: str, hosts: Any, mode: Any, max_age: Any) -> str:
    """The MTA-STS policy file (RFC 8461 §3.2), served at
    ``https://mta-sts.<domain>/.well-known/mta-sts.txt``.

    CRLF-separated key/value pairs, as §3.2 specifies; one ``mx`` line per
    MX host. Its SHA-256 gives the ``id`` of the ``_mta-sts`` record, so the
    id changes exactly when the policy does.
    """
    domain = _name(domain, "hopthu__mail_domain")
    checked = _hosts(hosts, domain)
    lines = [
        "version: STSv1",
        f"mode: {_choice(mode, MTA_STS_MODES, 'dns__mta_sts_mode')}",
        *(f"mx: {h['name']}" for h in checked if "mx" in h["services"]),
        f"max_age: {_seconds(max_age, 'dns__mta_sts_max_age', MTA_STS_MAX_AGE_LIMIT)}",
    ]
    return "".join(line + "\r\n" for line in lines)


def mta_sts_id(policy: str) -> str:
    """The ``id`` of the ``_mta-sts`` TXT record: a digest of the policy text."""
    return hashlib.sha256(policy.encode("utf-8")).hexdigest()[:MTA_STS_ID_LENGTH]


def mail_records(
    domain: Any,
    hosts: Any,
    ttl: Any,
    dmarc_policy: Any,
    dmarc_report_address: Any,
    mta_sts_mode: Any,
    mta_sts_max_age: Any,
    tlsrpt_report_address: Any,
    tlsa: Mapping[str, Any] | None = None,
    tlsa_note: str = "",
    dkim: Mapping[str, Any] | None = None,
    dkim_note: str = "",
) -> list[dict[str, Any]]:
    """The records of the mail domain, in sections: [{title, notes, records, commented}].

    - `domain`: ``hopthu__mail_domain``; the other arguments are the
      ``dns__*`` settings of the same name (``dns__hosts``, ``dns__ttl``...);
    - `tlsa`: host name -> [SHA-256 of the certificate's SubjectPublicKeyInfo,
      hex], as hopthu/dns.py reads it from the certificates; None when the
      caller has none, and then `tlsa_note` says why in the output;
    - `dkim`: selector -> TXT value ("v=DKIM1; k=rsa; p=..."), as
      ``dkim_public_keys`` reads them from the controller's dns__dkim_dir;
      `dkim_note` adds a line to the DKIM section (e.g. a host whose key is
      missing).

    Each record is {owner, ttl, class, type, rdata} in presentation format,
    owner names absolute.
    """
    domain = _name(domain, "hopthu__mail_domain")
    checked = _hosts(hosts, domain)
    ttl = _seconds(ttl, "dns__ttl", 2**31 - 1)
    policy = _choice(dmarc_policy, DMARC_POLICIES, "dns__dmarc_policy")
    dmarc_rua = _mailbox(dmarc_report_address, "dns__dmarc_report_address")
    tlsrpt_rua = _mailbox(tlsrpt_report_address, "dns__tlsrpt_report_address")
    mx_hosts = [h for h in checked if "mx" in h["services"]]
    web = next((h for h in checked if "web" in h["services"]), None)

    def with_service(service: str) -> list[dict[str, Any]]:
        return [h for h in checked if service in h["services"]]

    sections = []
    sections.append(section(
        f"MX: the hosts that receive mail for {domain} (RFC 5321 §5.1)",
        ["All at one preference: each is a full inbound host."],
        [_record(domain, ttl, "MX", f"{MX_PREFERENCE} {fqdn(h['name'])}") for h in mx_hosts],
    ))
    sections.append(section(
        "Addresses of the published hosts",
        ["Each also needs a PTR record (reverse DNS) with the same name: see below."],
        [
            _record(h["name"], ttl, "A" if ip.version == 4 else "AAAA", str(ip))
            for h in checked
            for ip in h["addresses"]
        ],
    ))
    sections.append(section(
        "SPF (RFC 7208): only the MX hosts send mail for the domain",
        ["Each MX host's name gets its own record for the HELO identity (RFC 7208 §2.3)."],
        [_record(domain, ttl, "TXT", txt_rdata("v=spf1 mx -all"))]
        + [_record(h["name"], ttl, "TXT", txt_rdata("v=spf1 a -all")) for h in mx_hosts],
    ))
    sections.append(section(
        f"DMARC (RFC 7489): what receivers do with mail that fails SPF and DKIM: {policy}",
        [f"Aggregate reports go to {dmarc_rua}: that mailbox or alias must exist."],
        [_record(f"_dmarc.{domain}", ttl, "TXT",
                 txt_rdata(f"v=DMARC1; p={policy}; rua=mailto:{dmarc_rua}"))],
    ))
    if dkim is not None and not isinstance(dkim, Mapping):
        raise DnsRecordError(f"dkim: must map a selector to a TXT value, got {dkim!r}")
    dkim_records = [
        _record(f"{_text(selector, 'dkim selector')}._domainkey.{domain}", ttl, "TXT",
                txt_rdata(_text(value, f"dkim[{selector}]")))
        for selector, value in sorted((dkim or {}).items())
    ]
    dkim_notes = (
        ["Each MX host signs with its own key and selector (roles/rspamd): publish a new",
         "record before its host signs with it."]
        if dkim_records else
        ["No DKIM public key found. Each MX host makes its key on its first deploy",
         "(roles/rspamd) and the deploy copies the public record to dns__dkim_dir on the",
         "controller, where this is read. Until a host's record is published, receivers",
         "cannot verify its signatures and DMARC rests on SPF alone."]
    )
    sections.append(section(
        "DKIM (RFC 6376): the MX hosts' signing keys, public halves",
        dkim_notes + ([dkim_note] if dkim_note else []),
        dkim_records,
    ))
    if web is None:
        sections.append(section(
            "MTA-STS (RFC 8461): not published",
            ["No host in dns__hosts has the service 'web' to serve the policy."],
            [],
        ))
    else:
        policy_text = mta_sts_policy(domain, hosts, mta_sts_mode, mta_sts_max_age)
        url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
        sections.append(section(
            "MTA-STS (RFC 8461): senders require TLS with a valid certificate to the MX hosts",
            [f"The id is a digest of the policy, served at {url}:",
             *(f"  {line}" for line in policy_text.splitlines()),
             f"The certificate of {web['name']} must also name mta-sts.{domain}."],
            [
                _record(f"_mta-sts.{domain}", ttl, "TXT",
                        txt_rdata(f"v=STSv1; id={mta_sts_id(policy_text)}")),
                _record(f"mta-sts.{domain}", ttl, "CNAME", fqdn(web["name"])),
            ],
        ))
    sections.append(section(
        "TLS-RPT (RFC 8460): where senders report TLS failures",
        [f"Reports go to {tlsrpt_rua}: that mailbox or alias must exist."],
        [_record(f"_smtp._tls.{domain}", ttl, "TXT",
                 txt_rdata(f"v=TLSRPTv1; rua=mailto:{tlsrpt_rua}"))],
    ))
    srv = []
    for label, port, priority, service in SRV_SERVICES:
        srv.extend(
            _record(f"{label}.{domain}", ttl, "SRV", f"{priority} 1 {port} {fqdn(h['name'])}")
            for h in with_service(service)
        )
    srv.extend(_record(f"{label}.{domain}", ttl, "SRV", "0 0 0 .") for label in SRV_NOT_OFFERED)
    sections.append(section(
        "Mail client services (RFC 6186, RFC 8314 §5.1)",
        ["Implicit TLS first; IMAP before POP3. Mail access in clear text is not offered:",
         "its records point to \".\" (RFC 2782: not available at this domain)."],
        srv,
    ))
    if web is not None:
        sections.append(section(
            "Mail client set-up: autoconfig (Thunderbird) and autodiscover (Outlook)",
            [f"The certificate of {web['name']} must also name these."],
            [
                _record(f"autoconfig.{domain}", ttl, "CNAME", fqdn(web["name"])),
                _record(f"autodiscover.{domain}", ttl, "CNAME", fqdn(web["name"])),
                _record(f"_autodiscover._tcp.{domain}", ttl, "SRV",
                        f"0 1 443 {fqdn(web['name'])}"),
            ],
        ))
    if tlsa is None:
        sections.append(section(
            "TLSA (DANE, RFC 7672): not published here",
            [tlsa_note or "No certificate digests were given."],
            [],
        ))
    else:
        if not isinstance(tlsa, Mapping):
            raise DnsRecordError(f"tlsa: must map a host name to digests, got {tlsa!r}")
        records = []
        for h in mx_hosts:
            digests = tlsa.get(h["name"]) or []
            records.extend(
                _record(f"_25._tcp.{h['name']}", ttl, "TLSA", f"3 1 1 {_hex(d, h['name'])}")
                for d in digests
            )
        missing = [h["name"] for h in mx_hosts if not tlsa.get(h["name"])]
        sections.append(section(
            "TLSA (DANE, RFC 7672): the MX hosts' keys, DANE-EE SPKI SHA-256 (3 1 1)",
            ["Publish only in a DNSSEC-signed zone: without DNSSEC senders ignore them.",
             "3 1 1 pins the key, not the certificate: when a host gets a new key, publish",
             "the new record beside the old one at least a TTL before the key is used."]
            + ([tlsa_note] if tlsa_note else [])
            + [f"No certificate found for {name}: no TLSA record." for name in missing],
            records,
        ))
    return sections


def _hex(value: Any, name: str) -> str:
    digest = _text(value, f"tlsa[{name}]").lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DnsRecordError(f"tlsa[{name}]: {value!r} is not a SHA-256 digest in hex")
    return digest


def reverse_records(hosts: Any, network: Any, ttl: Any) -> list[dict[str, Any]]:
    """PTR records for the addresses of `hosts` ([{name, addresses}]) inside `network`.

    Reverse DNS lives in the zone of the address block (RFC 1035 §3.5), which
    the ministry's provider usually runs; receivers check that an MX host's
    address maps back to its name. The owner names are absolute.
    """
    try:
        net = ipaddress.ip_network(_text(network, "network"), strict=True)
    except ValueError as exc:
        raise DnsRecordError(f"network: {network!r} is not a network ({exc})") from None
    ttl = _seconds(ttl, "dns__ttl", 2**31 - 1)
    if isinstance(hosts, (str, Mapping)) or not isinstance(hosts, Sequence):
        raise DnsRecordError(f"hosts: must be a list of {{name, addresses}}, got {hosts!r}")
    records = []
    for index, entry in enumerate(hosts):
        if not isinstance(entry, Mapping):
            raise DnsRecordError(f"hosts[{index}]: must be a mapping {{name, addresses}}")
        name = _name(entry.get("name"), f"hosts[{index}].name")
        for i, value in enumerate(entry.get("addresses") or []):
            ip = _address(value, f"hosts[{index}].addresses[{i}]")
            if ip.version == net.version and ip in net:
                records.append(_record(ip.reverse_pointer, ttl, "PTR", fqdn(name)))
    return records


def reverse_zone(network: Any) -> str:
    """The reverse zone of a network on an octet (IPv4) or nibble (IPv6) boundary.

    198.18.0.0/24 -> 0.18.198.in-addr.arpa
    """
    try:
        net = ipaddress.ip_network(_text(network, "network"), strict=True)
    except ValueError as exc:
        raise DnsRecordError(f"network: {network!r} is not a network ({exc})") from None
    step = 8 if net.version == 4 else 4
    if net.prefixlen % step or net.prefixlen == 0:
        raise DnsRecordError(
            f"network: {network!r} is not on a{'n octet' if step == 8 else ' nibble'} boundary "
            f"(a prefix length that is a multiple of {step}); its reverse zone has no single name"
        )
    labels = net.network_address.reverse_pointer.split(".")
    suffix = 2  # in-addr.arpa / ip6.arpa
    keep = net.prefixlen // step
    host_labels = len(labels) - suffix - keep
    return ".".join(labels[host_labels:])


def _record_lines(records: Sequence[Mapping[str, Any]], prefix: str = "") -> list[str]:
    """Records as zone-file lines, their columns lined up."""
    owner_width = max([0, *(len(r["owner"]) for r in records)])
    ttl_width = max([0, *(len(str(r["ttl"])) for r in records)])
    return [
        f"{prefix}{r['owner']:<{owner_width}} {r['ttl']:>{ttl_width}} {r['class']} "
        f"{r['type']:<5} {r['rdata']}"
        for r in records
    ]


def zone_fragment(sections: Any) -> str:
    """The sections as zone-file text: a ';' comment before each, one record a line.

    A section marked ``commented`` (records that belong in another zone, such
    as PTR records) has its records behind ';'. Columns line up over the
    whole fragment. No trailing newline.
    """
    if isinstance(sections, (str, Mapping)) or not isinstance(sections, Sequence):
        raise DnsRecordError(f"zone_fragment: expects the sections of mail_records, got "
                             f"{type(sections).__name__}")
    # One column layout for every section: computed over all records at once.
    lines_of = iter(_record_lines([r for s in sections for r in s["records"]]))
    lines: list[str] = []
    for section in sections:
        if lines:
            lines.append("")
        lines.append(f"; --- {section['title']}")
        lines.extend(
            f"; {line}".rstrip() for note in section["notes"] for line in str(note).split("\n")
        )
        prefix = "; " if section.get("commented") else ""
        lines.extend(prefix + next(lines_of) for _ in section["records"])
    return "\n".join(lines)


def dns_mail_zone(domain: Any, **settings: Any) -> str:
    """Filter: the mail domain's records as zone-file text (``zone_fragment(mail_records())``).

    ``{{ hopthu__mail_domain | dns_mail_zone(hosts=dns__hosts, ttl=dns__ttl, ...) }}``
    with the keyword arguments of `mail_records`; no trailing newline.
    """
    return zone_fragment(mail_records(domain, **settings))


def dns_reverse_zone_records(hosts: Any, network: Any, ttl: Any) -> str:
    """Filter: the PTR records of `hosts` in `network` as zone-file lines (no trailing newline)."""
    records = reverse_records(hosts, network, ttl)
    if not records:
        return "; (no published address in this network)"
    return "\n".join(_record_lines(records))


class FilterModule:
    """Ansible's entry point; hopthu.render and hopthu.dns load it too."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "dns_dkim_keys": dkim_public_keys,
            "dns_mail_zone": dns_mail_zone,
            "dns_mta_sts_policy": mta_sts_policy,
            "dns_reverse_zone": reverse_zone,
            "dns_reverse_zone_records": dns_reverse_zone_records,
        }
