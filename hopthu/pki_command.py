"""`hopthu pki`: each mail host's certificate, prepared on the controller.

    hopthu pki ensure --mode internal --ca-dir DIR --ca-name CN --key-type ec \\
        --name mail1 --dns mail1.moj.gov.vn --ip 198.18.0.10
    hopthu pki ensure --mode provided --cert FILE --key FILE --ca FILE
    hopthu pki ensure --mode internal --ca-dir DIR --ca-name CN --no-host-cert

Both engines call `ensure` with the host's pki__* settings: Ansible through
this command (roles/pki/tasks/main.yml, delegated to the controller), pyinfra
directly in Python (hopthu/deploys/pki.py). It prints one JSON object:

    {"changed": false, "reason": "up to date", "key_file": ".../hosts/mail1.key",
     "fullchain_file": ".../hosts/mail1.fullchain.pem", "ca_file": ".../ca.crt"}

With the internal CA (hopthu.pki) the CA is created once and a host
certificate is issued only when it is missing, does not match its names or
key type, or expires within 30 days, so a second deploy changes nothing.
Issued files live in `<ca-dir>/hosts/`, never beside the CA's own files, so
no host name can collide with ca.key. In provided mode nothing is written:
the files are checked (the settings check did the same before any host was
touched) and their paths returned. Exit status 0, or 2 with the reason.
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


def run(args: argparse.Namespace) -> int:
    try:
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
) -> dict[str, Any]:
    """Prepare a host's files on the controller; return their paths and whether they changed.

    The result's ``key_file`` and ``fullchain_file`` are empty when
    `host_cert` is false.
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
                       cert_file if host_cert else None, ca_file)
    if mode != "internal":
        raise pki.PkiError(f"mode must be internal or provided, not {mode!r}")
    if ca_dir is None:
        raise pki.PkiError("internal mode needs --ca-dir, the CA's directory on the controller")
    with _locked(ca_dir):
        created = not (ca_dir / pki.CA_CERT).exists()
        ca = pki.load_or_create_ca(ca_dir, ca_name, key_type=key_type)  # type: ignore[arg-type]
        if not host_cert:
            return _result(created, "CA created" if created else "CA up to date", None, None,
                           ca.cert_path)
        if not name:
            raise pki.PkiError("internal mode needs --name, the host's inventory name")
        issued = pki.ensure_host_cert(
            ca, ca_dir / HOSTS_SUBDIR, name, dns, ips, key_type=key_type  # type: ignore[arg-type]
        )
    reason = ("CA created; " if created else "") + issued.reason
    return _result(created or issued.changed, reason, issued.key_path, issued.fullchain_path,
                   ca.cert_path)


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
    )


def _result(changed: bool, reason: str, key: Path | None, fullchain: Path | None,
            ca: Path) -> dict[str, Any]:
    return {
        "changed": changed,
        "reason": reason,
        "key_file": str(key) if key else "",
        "fullchain_file": str(fullchain) if fullchain else "",
        "ca_file": str(ca),
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
