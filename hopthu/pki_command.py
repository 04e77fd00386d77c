"""`hopthu pki`: each mail host's certificate, prepared on the controller.

    hopthu pki ensure --mode internal --ca-dir DIR --ca-name CN --key-type ec \\
        --crl-url http://pki.moj.gov.vn/hopthu-ca.crl \\
        --name mail1 --dns mail1.moj.gov.vn --ip 198.18.0.10
    hopthu pki ensure --mode provided --cert FILE --key FILE --ca FILE
    hopthu pki ensure --mode internal --ca-dir DIR --ca-name CN --no-host-cert
    hopthu pki crl --ca-dir DIR
    hopthu pki revoke --ca-dir DIR SERIAL --reason key_compromise

Both engines call `ensure` with the host's pki__* settings: Ansible through
this command (roles/pki/tasks/main.yml, delegated to the controller), pyinfra
directly in Python (hopthu/deploys/pki.py). It prints one JSON object:

    {"changed": false, "reason": "up to date", "key_file": ".../hosts/mail1.key",
     "fullchain_file": ".../hosts/mail1.fullchain.pem", "ca_file": ".../ca.crt",
     "crl_file": ".../ca.crl"}

With the internal CA (hopthu.pki) the CA is created once and a host
certificate is issued only when it is missing, does not match its names, key
type or CRL URL (``--crl-url``, pki__crl_url, which every certificate names
as its CRL distribution point), has been revoked, or expires within 30 days,
so a second deploy changes nothing. The CA's CRL (``ca.crl``, DER) is signed
again when the revoked list changed or fewer than 10 days of its 30 remain.
Issued files live in `<ca-dir>/hosts/`, never beside the CA's own files, so
no host name can collide with ca.key. In provided mode nothing is written:
the files are checked (the settings check did the same before any host was
touched) and their paths returned, and ``crl_file`` is empty (the operator's
CA publishes its own revocation).

`crl` signs the CRL again if it has to and prints its path and next update;
`revoke` revokes a certificate of the internal CA by its serial (hex, as
``openssl x509 -noout -serial -in FILE`` prints it), records it in
``<ca-dir>/revoked.txt`` and signs a new CRL; the next deploy installs the
CRL on the hosts and issues the host whose certificate it was a new one.
Both refuse a directory without a CA, and `revoke` a malformed or unknown
serial, before anything is written. Exit status 0, or 2 with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hopthu import pki

#: Exit status when a certificate cannot be prepared.
FAILED = 2
#: Where the internal CA keeps the host certificates it issued, under its directory.
HOSTS_SUBDIR = "hosts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ensure_parser = actions.add_parser(
        "ensure", help="make sure a host's certificate is ready on the controller; print JSON"
    )
    ensure_parser.add_argument("--mode", choices=("internal", "provided"), required=True)
    ensure_parser.add_argument("--ca-dir", type=Path, help="internal: the CA's directory")
    ensure_parser.add_argument("--ca-name", default="hopthu lab CA",
                               help="internal: the CA's common name, if it is created")
    ensure_parser.add_argument("--key-type", choices=("ec", "rsa"), default="ec")
    ensure_parser.add_argument("--name", help="internal: the host's file name (inventory name)")
    ensure_parser.add_argument("--dns", action="append", default=[],
                               help="a DNS name the certificate covers (repeat; first is the CN)")
    ensure_parser.add_argument("--ip", action="append", default=[],
                               help="an IP address the certificate covers (repeat)")
    ensure_parser.add_argument("--no-host-cert", action="store_true",
                               help="only the CA (a host that serves no TLS)")
    ensure_parser.add_argument("--cert", type=Path, help="provided: the certificate chain")
    ensure_parser.add_argument("--key", type=Path, help="provided: its private key")
    ensure_parser.add_argument("--ca", type=Path, help="provided: the CA that issued it")
    ensure_parser.add_argument("--crl-url",
                               help="internal: the http:// URL of the CA's CRL, named in every "
                                    "certificate it issues (pki__crl_url)")

    crl_parser = actions.add_parser(
        "crl", help="sign the internal CA's CRL again if it has to; print its path and next update"
    )
    crl_parser.add_argument("--ca-dir", type=Path, required=True,
                            help="the internal CA's directory (pki__ca_dir)")

    revoke_parser = actions.add_parser(
        "revoke", help="revoke a certificate of the internal CA by its serial; sign a new CRL"
    )
    revoke_parser.add_argument("serial", metavar="SERIAL",
                               help="the serial in hex (`openssl x509 -noout -serial -in FILE`)")
    revoke_parser.add_argument("--reason", required=True, choices=tuple(pki.REVOKE_REASONS),
                               help="why (RFC 5280 §5.3.1): key_compromise if the key may have "
                                    "leaked, superseded, cessation_of_operation, ...")
    revoke_parser.add_argument("--ca-dir", type=Path, required=True,
                               help="the internal CA's directory (pki__ca_dir)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "crl":
            print(crl(args.ca_dir))
            return 0
        if args.action == "revoke":
            print(revoke(args.ca_dir, args.serial, args.reason))
            return 0
        result = ensure(
            args.mode,
            ca_dir=args.ca_dir,
            ca_name=args.ca_name,
            key_type=args.key_type,
            name=args.name,
            dns=args.dns,
            ips=args.ip,
            host_cert=not args.no_host_cert,
            cert_file=args.cert,
            key_file=args.key,
            ca_file=args.ca,
            crl_url=args.crl_url,
        )
    except pki.PkiError as exc:
        print(f"hopthu pki: {exc}", file=sys.stderr)
        return FAILED
    print(json.dumps(result, sort_keys=True))
    return 0


def ensure(
    mode: str,
    *,
    ca_dir: Path | None = None,
    ca_name: str = "hopthu lab CA",
    key_type: str = "ec",
    name: str | None = None,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    host_cert: bool = True,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    ca_file: Path | None = None,
    crl_url: str | None = None,
) -> dict[str, Any]:
    """Prepare a host's files on the controller; return their paths and whether they changed.

    The result's ``key_file`` and ``fullchain_file`` are empty when
    `host_cert` is false, and ``crl_file`` in provided mode. In internal mode
    a host certificate needs `crl_url`: a certificate the internal CA issues
    always names its CRL.
    """
    if mode == "provided":
        if not (ca_file and (not host_cert or (cert_file and key_file))):
            raise pki.PkiError("provided mode needs --ca, and --cert and --key for a host cert")
        if host_cert:
            assert cert_file is not None and key_file is not None
            pki.check_pair(cert_file, key_file)
            pki.check_chain(cert_file, ca_file)
            pki.check_names(cert_file, [*dns, *ips])
        return _result(False, "provided by the operator", key_file if host_cert else None,
                       cert_file if host_cert else None, ca_file, None)
    if mode != "internal":
        raise pki.PkiError(f"mode must be internal or provided, not {mode!r}")
    if ca_dir is None:
        raise pki.PkiError("internal mode needs --ca-dir, the CA's directory on the controller")
    if host_cert and not name:
        raise pki.PkiError("internal mode needs --name, the host's inventory name")
    if host_cert and not crl_url:
        raise pki.PkiError(
            "internal mode needs --crl-url, the http:// URL of the CA's CRL that every "
            "certificate it issues names (pki__crl_url)"
        )
    if crl_url is not None:
        pki.check_crl_url(crl_url)  # before the CA is created or anything is written
    with _locked(ca_dir):
        created = not (ca_dir / pki.CA_CERT).exists()
        ca = pki.load_or_create_ca(ca_dir, ca_name, key_type=key_type)  # type: ignore[arg-type]
        issued = None
        if host_cert:
            assert name is not None
            issued = pki.ensure_host_cert(
                ca, ca_dir / HOSTS_SUBDIR, name, dns, ips,
                key_type=key_type, crl_url=crl_url,  # type: ignore[arg-type]
            )  # fmt: skip
        crl_file = pki.refresh_crl(ca)
    reasons = ["CA created"] if created else []
    if issued is not None:
        reasons.append(issued.reason)
    elif not created:
        reasons.append("CA up to date")
    if crl_file.changed:
        reasons.append(f"CRL signed: {crl_file.reason}")
    changed = created or crl_file.changed or (issued is not None and issued.changed)
    return _result(changed, "; ".join(reasons), issued.key_path if issued else None,
                   issued.fullchain_path if issued else None, ca.cert_path, crl_file.path)


def crl(ca_dir: Path) -> str:
    """Sign the internal CA's CRL again if it has to (`pki.refresh_crl`); say
    where it is, until when it is valid, and whether it changed."""
    with _locked(_existing_ca_dir(ca_dir)):
        ca = _load_internal_ca(ca_dir)
        crl_file = pki.refresh_crl(ca)
    return _describe_crl(crl_file)


def revoke(ca_dir: Path, serial: str, reason: str) -> str:
    """Revoke a certificate of the internal CA (`pki.revoke`); say what was
    revoked, where the new CRL is, and what to do next."""
    with _locked(_existing_ca_dir(ca_dir)):
        ca = _load_internal_ca(ca_dir)
        done = pki.revoke(ca, serial, reason)
    entry = done.entry
    what = f"{pki.serial_hex(entry.serial)} ({entry.note or 'no names'})"
    when = entry.revoked_at.strftime("%Y-%m-%d %H:%M UTC")
    if done.changed:
        head = f"revoked {what}: {entry.reason.name}, {when}"
    else:
        head = f"already revoked {what}: {entry.reason.name}, {when}; nothing changed"
    return (
        f"{head}\n{_describe_crl(done.crl)}\n"
        "Next: deploy (roles/pki) to install the CRL on the hosts; the host that served this "
        "certificate gets a new one in the same run."
    )


def _existing_ca_dir(ca_dir: Path) -> Path:
    """``ca_dir`` if it holds a CA; never create one for `crl` or `revoke`."""
    if not (ca_dir / pki.CA_CERT).is_file():
        raise pki.PkiError(
            f"{ca_dir} holds no internal CA (no {pki.CA_CERT}): give the pki__ca_dir of the "
            "environment, e.g. /var/lib/hopthu/pki/production. Nothing was changed."
        )
    return ca_dir


def _load_internal_ca(ca_dir: Path) -> pki.CA:
    return pki.load_ca(ca_dir / pki.CA_CERT, ca_dir / pki.CA_KEY)


def _describe_crl(crl_file: pki.CrlFile) -> str:
    state = f"signed: {crl_file.reason}" if crl_file.changed else "up to date"
    revoked = len(list(crl_file.crl))
    return (
        f"CRL: {crl_file.path} (DER), {state}\n"
        f"number {crl_file.number}, {revoked} revoked, next update "
        f"{crl_file.next_update.strftime('%Y-%m-%d %H:%M UTC')}"
    )


def ensure_for_host(values: Mapping[str, Any], host_name: str) -> dict[str, Any]:
    """`ensure` with a host's resolved pki__* settings (what the role passes as arguments)."""
    return ensure(
        values["pki__mode"],
        ca_dir=Path(values["pki__ca_dir"]),
        ca_name=values["pki__ca_common_name"],
        key_type=values["pki__key_type"],
        name=host_name,
        dns=list(values["pki__cert_names"]),
        ips=list(values["pki__cert_ip_addresses"]),
        host_cert=bool(values["pki__host_cert_enabled"]),
        cert_file=Path(values["pki__cert_file"]) if values["pki__cert_file"] else None,
        key_file=Path(values["pki__key_file"]) if values["pki__key_file"] else None,
        ca_file=Path(values["pki__ca_file"]) if values["pki__ca_file"] else None,
        crl_url=values["pki__crl_url"],
    )


def _result(changed: bool, reason: str, key: Path | None, fullchain: Path | None,
            ca: Path, crl_file: Path | None) -> dict[str, Any]:
    return {
        "changed": changed,
        "reason": reason,
        "key_file": str(key) if key else "",
        "fullchain_file": str(fullchain) if fullchain else "",
        "ca_file": str(ca),
        "crl_file": str(crl_file) if crl_file else "",
    }


@contextlib.contextmanager
def _locked(ca_dir: Path) -> Iterator[None]:
    """One host at a time: Ansible prepares several hosts' certificates in parallel."""
    ca_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(ca_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="hopthu pki")
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
