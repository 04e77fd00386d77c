"""`hopthu dns`: the records the ministry's DNS administrator must publish for mail.

    hopthu dns --inventory production                  # a zone-file fragment
    hopthu dns --inventory production --format json    # the same, as data
    hopthu dns --inventory lab --mta-sts-policy mta-sts.txt
    hopthu dns --inventory lab --pki-dir /var/lib/hopthu/pki/lab   # with TLSA

The records come from the settings (``hopthu__mail_domain`` and ``dns__*``,
hopthu/schema/dns.py), computed by filter_plugins/hopthu_dns.py: the very
code that renders the zone the lab's DNS server on peer1 serves
(roles/lab_peer), so what the lab resolves is what production publishes.

DKIM records (RFC 6376) are the public halves of the keys each MX host made
for itself (roles/rspamd; the private key never leaves the host). Every
deploy copies them to the controller, ``dns__dkim_dir/<selector>._domainkey.
<domain>.txt``, and they are read there (or from ``--dkim-dir``); an MX host
whose record is missing is named in the output. Records of signing domains
other than the mail domain (``rspamd__dkim_domains``) are printed commented:
they belong in those domains' zones.

TLSA records (DANE, RFC 7672) need each MX host's certificate. They are read
from the controller's certificate files, ``<dir>/<inventory host>.crt`` as
hopthu.pki writes them (``--pki-dir``, or one file per host with ``--cert
HOST=FILE``), by default from where the internal CA keeps them
(``<pki__ca_dir>/hosts/<host>.crt``, roles/pki) or the operator's
``pki__cert_file``, or, with ``--fetch-tlsa``, from the certificate each MX
host presents after STARTTLS on port 25. Files are preferred: they are what the
next deploy installs, and reading them touches no host. The output depends
only on the settings and the certificates' keys: the same input prints the
same bytes.

Exit status: 0, or 2 when the settings are invalid or disagree with the
inventory (the message names the key and what is allowed).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import smtplib
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hopthu.render import FILTER_PLUGINS_DIR

#: The settings the records are built from: argument of mail_records -> key.
RECORD_SETTINGS = {
    "domain": "hopthu__mail_domain",
    "hosts": "dns__hosts",
    "ttl": "dns__ttl",
    "dmarc_policy": "dns__dmarc_policy",
    "dmarc_report_address": "dns__dmarc_report_address",
    "mta_sts_mode": "dns__mta_sts_mode",
    "mta_sts_max_age": "dns__mta_sts_max_age",
    "tlsrpt_report_address": "dns__tlsrpt_report_address",
}

#: Which inventory group must hold a host that offers a service (DESIGN.md §3).
SERVICE_GROUPS = {
    "mx": "mail_mx",
    "submission": "mail_mx",
    "imap": "mail_store",
    "pop3": "mail_store",
    "web": "mail_store",
}

#: Seconds for each step of a STARTTLS certificate fetch.
FETCH_TIMEOUT = 10.0

INVALID = 2


class DnsError(Exception):
    """The records cannot be produced; the message says what to do."""


def records_module() -> ModuleType:
    """filter_plugins/hopthu_dns.py, loaded by its path as hopthu.render loads filters.

    The same module object the renderer uses, so the zone the lab serves and
    what this command prints come from one piece of code.
    """
    name = "hopthu._filter_plugins.hopthu_dns"
    path = FILTER_PLUGINS_DIR / "hopthu_dns.py"
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == str(path):
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def record_arguments(values: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of ``mail_records`` from a host's settings."""
    return {argument: values[key] for argument, key in RECORD_SETTINGS.items()}


# --- TLSA: the MX hosts' keys ----------------------------------------------------------


def spki_sha256(certificate: bytes) -> str:
    """SHA-256 of a certificate's SubjectPublicKeyInfo (TLSA 3 1 1, RFC 6698 §2.1), hex.

    `certificate` is PEM (the first certificate is used) or DER.
    """
    if b"-----BEGIN CERTIFICATE-----" in certificate:
        cert = x509.load_pem_x509_certificate(certificate)
    else:
        cert = x509.load_der_x509_certificate(certificate)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def fetch_certificate(address: str, port: int = 25, timeout: float = FETCH_TIMEOUT) -> bytes:
    """The DER certificate an SMTP server presents after STARTTLS (not verified: only read)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(address, port, timeout=timeout) as smtp:
        smtp.ehlo("hopthu-dns.invalid")
        smtp.starttls(context=context)
        der = smtp.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    if not der:
        raise DnsError(f"{address}:{port} presented no certificate after STARTTLS")
    return der


@dataclass
class TlsaSource:
    """Where the MX hosts' certificates come from, first match wins.

    1. `files`: inventory host -> certificate file (``--cert HOST=FILE``);
    2. `pki_dir`: ``<pki_dir>/<host>.crt`` (``--pki-dir``);
    3. `from_settings`: the host's own pki settings: ``pki__cert_file`` in
       provided mode, else ``<pki__ca_dir>/hosts/<host>.crt``, which the
       internal CA writes on the controller (roles/pki);
    4. `fetch`: the certificate the host presents after STARTTLS on port 25.
    """

    files: dict[str, Path] = field(default_factory=dict)
    pki_dir: Path | None = None
    from_settings: bool = True
    fetch: bool = False

    def certificate_file(self, host: str, values: Mapping[str, Any]) -> Path | None:
        """The certificate file of inventory `host` on the controller, if one is known."""
        if host in self.files:
            return self.files[host]
        candidates = []
        if self.pki_dir is not None:
            candidates.append(self.pki_dir / f"{host}.crt")
        if self.from_settings:
            if values.get("pki__mode") == "provided" and values.get("pki__cert_file"):
                candidates.append(Path(values["pki__cert_file"]))
            elif values.get("pki__ca_dir"):
                candidates.append(Path(values["pki__ca_dir"]) / "hosts" / f"{host}.crt")
        return next((c for c in candidates if c.is_file()), None)

    def digests(
        self, hosts: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
    ) -> tuple[dict[str, list[str]], str] | None:
        """public name -> [digest] for the MX hosts and a note on where they came from.

        `settings`: inventory host -> hopthu.settings.Settings. None when no
        source was asked for and none was found: then no TLSA section is
        printed with records.
        """
        found: dict[str, list[str]] = {}
        where: list[str] = []
        for entry in hosts:
            if "mx" not in entry["services"]:
                continue
            host, name = str(entry["host"]), str(entry["name"])
            values = settings[host].values if host in settings else {}
            path = self.certificate_file(host, values)
            if path is not None:
                try:
                    found[name] = [spki_sha256(path.read_bytes())]
                except (OSError, ValueError) as exc:
                    raise DnsError(
                        f"{path}: cannot read the certificate of {host} ({exc}); give a PEM "
                        f"or DER certificate"
                    ) from exc
                where.append(f"{name} from {path}")
            elif self.fetch:
                address = str(entry["addresses"][0])
                try:
                    found[name] = [spki_sha256(fetch_certificate(address))]
                except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                    raise DnsError(
                        f"{address}:25 ({name}): could not fetch the certificate after "
                        f"STARTTLS ({exc}); is Postfix running there with TLS? Or use --pki-dir"
                    ) from exc
                where.append(f"{name} from its STARTTLS certificate on {address}:25")
        if not found and not (self.files or self.pki_dir or self.fetch):
            return None
        return found, ("Keys read: " + "; ".join(where) + ".") if where else ""


# --- DKIM: the MX hosts' public keys ------------------------------------------------


@dataclass
class DkimKeys:
    """The DKIM records to publish, read from the controller's copies."""

    #: selector -> TXT value, for the mail domain
    main: dict[str, str]
    #: other signing domain -> selector -> TXT value
    others: dict[str, dict[str, str]]
    #: what the output should say about the keys (missing hosts, where from)
    note: str


def dkim_keys(
    settings: Mapping[str, Any], domain: str, directory: Path | None = None
) -> DkimKeys:
    """The public keys in `directory` (default: the settings' dns__dkim_dir).

    `settings`: inventory host -> hopthu.settings.Settings. The hosts that run
    the rspamd role say which (selector, domain) pairs must be there; a
    missing one is named in the note, with what to do.
    """
    rec = records_module()
    hosts = list(settings)
    folder = directory if directory is not None else Path(
        settings[hosts[0]].values["dns__dkim_dir"])
    expected: dict[str, list[tuple[str, str]]] = {}
    for host in hosts:
        values = settings[host].values
        selector = values.get("rspamd__dkim_selector")
        if selector is None:
            continue
        for signed in values.get("rspamd__dkim_domains") or []:
            expected.setdefault(signed, []).append((host, selector))
    try:
        main = rec.dkim_public_keys(str(folder), domain)
        others = {
            other: rec.dkim_public_keys(str(folder), other)
            for other in sorted(expected) if other != domain
        }
    except rec.DnsRecordError as exc:
        raise DnsError(str(exc)) from exc
    missing = [
        f"{host} (selector {selector}, {signed})"
        for signed, pairs in sorted(expected.items())
        for host, selector in pairs
        if selector not in (main if signed == domain else others.get(signed, {}))
    ]
    note = f"Read from {folder}."
    if missing:
        note += (
            "\nNo public key yet for: " + "; ".join(missing) + ".\nDeploy those hosts: "
            "roles/rspamd makes the key there and copies its record to this directory."
        )
    return DkimKeys(main, {d: k for d, k in others.items() if k}, note)


# --- The publication ---------------------------------------------------------------------


@dataclass
class Publication:
    """Everything `hopthu dns` prints for one inventory."""

    inventory: str
    domain: str
    sections: list[dict[str, Any]]
    mta_sts_policy: str | None
    mta_sts_url: str
    reverse: list[dict[str, Any]]
    #: DKIM records of other signing domains, for their own zones
    other_dkim: list[dict[str, Any]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [r for s in self.sections if not s.get("commented") for r in s["records"]]


def inventory_problems(settings: Mapping[str, Any]) -> list[str]:
    """Ways the dns__ settings disagree with the inventory or between hosts.

    `settings`: host -> hopthu.settings.Settings of one inventory.
    """
    problems: list[str] = []
    hosts = list(settings)
    first = settings[hosts[0]]
    for key in (*RECORD_SETTINGS.values(), "dns__dkim_dir"):
        differ = [h for h in hosts[1:] if settings[h].values.get(key) != first.values.get(key)]
        if differ:
            problems.append(
                f"{key} differs between {hosts[0]} and {', '.join(differ)}: the published "
                f"records are one set for the whole inventory; set {key} once, in "
                f"group_vars/all.yml or inventories/<env>/group_vars/all.yml"
            )
    inventory = first.inventory
    for index, entry in enumerate(first.values.get("dns__hosts") or []):
        host = entry["host"]
        if host not in inventory.hosts:
            problems.append(
                f"dns__hosts[{index}].host = {host!r} is not a host of the inventory; one of: "
                f"{', '.join(inventory.hosts)}"
            )
            continue
        groups = inventory.host_groups(host)
        for service in entry["services"]:
            group = SERVICE_GROUPS[service]
            if group not in groups:
                problems.append(
                    f"dns__hosts[{index}] ({host}) offers {service!r}, but {host} is not in "
                    f"the group {group} that runs it: add it there or remove the service"
                )
    return problems


def publication(
    inventory: str | Path,
    *,
    tlsa: TlsaSource | None = None,
    dkim_dir: Path | None = None,
    dkim: bool = True,
    root: Path | None = None,
) -> Publication:
    """The records of `inventory` (an environment name, a directory or a hosts.yml).

    DKIM records come from `dkim_dir` (default: the settings' dns__dkim_dir);
    `dkim` False prints none.
    """
    from hopthu.settings import load_inventory

    settings = load_inventory(inventory, root=root)
    if not settings:
        raise DnsError(f"inventory {inventory} has no hosts")
    problems = inventory_problems(settings)
    if problems:
        raise DnsError("the dns__ settings do not fit the inventory:\n  " + "\n  ".join(problems))
    values = next(iter(settings.values())).values
    arguments = record_arguments(values)
    rec = records_module()
    source = TlsaSource() if tlsa is None else tlsa
    found = source.digests(arguments["hosts"], settings)
    if found is None:
        tlsa_arguments: dict[str, Any] = {"tlsa": None, "tlsa_note": (
            "No certificate of an MX host found on this controller (the internal CA's\n"
            "<pki__ca_dir>/hosts/<host>.crt): give --pki-dir DIR, --cert HOST=FILE or\n"
            "--fetch-tlsa to print them."
        )}
    else:
        tlsa_arguments = {"tlsa": found[0], "tlsa_note": found[1]}
    if dkim:
        keys = dkim_keys(settings, arguments["domain"], dkim_dir)
        dkim_arguments: dict[str, Any] = {"dkim": keys.main, "dkim_note": keys.note}
    else:
        keys = DkimKeys({}, {}, "")
        dkim_arguments = {"dkim": None, "dkim_note": "Not printed (--no-dkim)."}
    try:
        sections = rec.mail_records(**arguments, **tlsa_arguments, **dkim_arguments)
        other_dkim = [
            {"owner": rec.fqdn(f"{selector}._domainkey.{other}"), "ttl": arguments["ttl"],
             "class": "IN", "type": "TXT", "rdata": rec.txt_rdata(value)}
            for other, selectors in sorted(keys.others.items())
            for selector, value in sorted(selectors.items())
        ]
        web = any("web" in h["services"] for h in arguments["hosts"])
        policy = rec.mta_sts_policy(
            arguments["domain"], arguments["hosts"], arguments["mta_sts_mode"],
            arguments["mta_sts_max_age"],
        ) if web else None
        reverse = [
            *rec.reverse_records(arguments["hosts"], "0.0.0.0/0", arguments["ttl"]),
            *rec.reverse_records(arguments["hosts"], "::/0", arguments["ttl"]),
        ]
    except rec.DnsRecordError as exc:
        raise DnsError(str(exc)) from exc
    name = next(iter(settings.values())).inventory.name
    return Publication(
        inventory=name,
        domain=arguments["domain"],
        sections=sections,
        mta_sts_policy=policy,
        mta_sts_url=f"https://mta-sts.{arguments['domain']}/.well-known/mta-sts.txt",
        reverse=reverse,
        other_dkim=other_dkim,
    )


def zone_text(pub: Publication) -> str:
    """The zone-file fragment: a header, the records, the PTR records as comments."""
    rec = records_module()
    reverse = rec.section(
        "Reverse DNS (PTR): in the reverse zone of each address block, usually the provider's",
        ["Receivers check that an MX host's address maps back to its name."],
        pub.reverse, commented=True,
    )
    extra = [rec.section(
        "DKIM of the other signing domains (rspamd__dkim_domains): in each domain's own zone",
        ["Owner names are absolute; publish each in the zone of its domain."],
        pub.other_dkim, commented=True,
    )] if pub.other_dkim else []
    header = [
        f"; Mail records for {pub.domain} (inventory {pub.inventory}): what the DNS",
        f"; administrator publishes in the {pub.domain} zone. Owner names are absolute;",
        "; the zone's own SOA and NS records are not included.",
        f"; Generated by `hopthu dns --inventory {pub.inventory}` from the settings",
        "; hopthu__mail_domain and dns__* (hopthu/schema/dns.py); the lab's DNS on peer1",
        "; serves the same records.",
    ]
    return "\n".join(header) + "\n\n" + rec.zone_fragment([*pub.sections, *extra, reverse]) + "\n"


def json_text(pub: Publication) -> str:
    data = {
        "inventory": pub.inventory,
        "domain": pub.domain,
        "records": [
            {**r, "section": s["title"]}
            for s in pub.sections for r in s["records"]
        ],
        "notes": {s["title"]: s["notes"] for s in pub.sections if s["notes"]},
        "mta_sts": None if pub.mta_sts_policy is None else {
            "url": pub.mta_sts_url,
            "policy": pub.mta_sts_policy,
            "id": records_module().mta_sts_id(pub.mta_sts_policy),
        },
        "reverse": pub.reverse,
        "other_domains_dkim": pub.other_dkim,
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --- The command ---------------------------------------------------------------------------


def _cert_option(value: str) -> tuple[str, Path]:
    host, sep, path = value.partition("=")
    if not sep or not host or not path:
        raise argparse.ArgumentTypeError(f"{value!r}: write HOST=FILE, e.g. mail1=certs/mail1.crt")
    return host, Path(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", "-i", default="lab",
                        help="environment name, inventory directory or hosts.yml (default: lab)")
    parser.add_argument("--format", choices=("zone", "json"), default="zone",
                        help="zone: a zone-file fragment with comments (default); json: data")
    parser.add_argument("--mta-sts-policy", metavar="FILE", type=Path,
                        help="also write the MTA-STS policy file (served at "
                             "https://mta-sts.<domain>/.well-known/mta-sts.txt) to FILE")
    parser.add_argument("--pki-dir", metavar="DIR", type=Path,
                        help="read the MX hosts' certificates for TLSA from DIR/<host>.crt")
    parser.add_argument("--cert", metavar="HOST=FILE", type=_cert_option, action="append",
                        default=[], help="the certificate of one inventory host (repeatable)")
    parser.add_argument("--fetch-tlsa", action="store_true",
                        help="for MX hosts without a file, fetch the certificate over SMTP "
                             "STARTTLS on port 25 of the host's first address")
    parser.add_argument("--no-tlsa", action="store_true",
                        help="print no TLSA records, even if certificates are found")
    parser.add_argument("--dkim-dir", metavar="DIR", type=Path,
                        help="read the DKIM public records from DIR/<selector>._domainkey."
                             "<domain>.txt instead of the settings' dns__dkim_dir")
    parser.add_argument("--no-dkim", action="store_true",
                        help="print no DKIM records")


def run(args: argparse.Namespace) -> int:
    from hopthu.settings import SettingsError

    if args.pki_dir is not None and not args.pki_dir.is_dir():
        print(f"hopthu dns: --pki-dir {args.pki_dir} is not a directory", file=sys.stderr)
        return INVALID
    if args.no_tlsa:
        source = TlsaSource(from_settings=False)
    else:
        source = TlsaSource(files=dict(args.cert), pki_dir=args.pki_dir, fetch=args.fetch_tlsa)
    if args.dkim_dir is not None and not args.dkim_dir.is_dir():
        print(f"hopthu dns: --dkim-dir {args.dkim_dir} is not a directory", file=sys.stderr)
        return INVALID
    try:
        pub = publication(args.inventory, tlsa=source, dkim_dir=args.dkim_dir,
                          dkim=not args.no_dkim)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return INVALID
    except DnsError as exc:
        print(f"hopthu dns: {exc}", file=sys.stderr)
        return INVALID
    if args.mta_sts_policy is not None:
        if pub.mta_sts_policy is None:
            print("hopthu dns: no host in dns__hosts has the service 'web': there is no "
                  "MTA-STS policy to write", file=sys.stderr)
            return INVALID
        args.mta_sts_policy.write_bytes(pub.mta_sts_policy.encode("utf-8"))
    sys.stdout.write(json_text(pub) if args.format == "json" else zone_text(pub))
    return 0
