"""The settings of the `pki` role: each mail host's TLS certificate (roles/pki/defaults/main.yml)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel
from hopthu.schema.mailtypes import AbsolutePath, CrlUrl, OptionalPath, ServiceUnit
from hopthu.schema.types import DomainName, IPAddress


class PkiSettings(SettingsModel):
    """Each mail host's TLS certificate and the CA every host trusts.

    With the internal CA (pki__mode internal) the controller creates the CA
    once (hopthu/pki.py) and issues each host a certificate for its names;
    with pki__mode provided the operator gives the certificate, its key and
    its CA, and the settings check refuses a wrong path, a key that does not
    match its certificate, a certificate its CA did not issue, or one that
    does not cover the host's names. Either way the host gets the key and the
    full chain at a fixed path, and the CA in its trust store; with the
    internal CA also the CA's CRL, which every certificate it issues names
    (pki__crl_url).
    """

    namespace = "pki"

    pki__mode: Literal["internal", "provided"] = Field(
        description=(
            "Where the certificates come from: internal (the CA on the controller issues and "
            "renews them; the lab, and the ministry if it wishes) or provided (the operator "
            "supplies pki__cert_file, pki__key_file and pki__ca_file)."
        )
    )
    pki__ca_dir: AbsolutePath = Field(
        description=(
            "The internal CA's directory on the controller (ca.crt, ca.key 0600) and its "
            "issued host certificates (hosts/). Never inside the repository; back it up."
        )
    )
    pki__ca_common_name: str = Field(
        min_length=1,
        max_length=64,
        description="The internal CA's common name; used only when the CA is created.",
    )
    pki__key_type: Literal["ec", "rsa"] = Field(
        description=(
            "The key type of issued host certificates: ec (ECDSA P-256) or rsa (RSA 3072) for "
            "old clients without ECDSA (hopthu/pki.py explains)."
        )
    )
    pki__host_cert_enabled: bool = Field(
        description=(
            "Whether the host gets a certificate of its own. false only trusts the CA (a host "
            "that serves no TLS, or only uses it as a client)."
        )
    )
    pki__cert_names: list[DomainName] = Field(
        min_length=1,
        description=(
            "The DNS names the host's certificate covers; the first is also its CN. Every name "
            "clients and MTAs connect to: the host's own name, the MX name, the client name."
        ),
    )
    pki__cert_ip_addresses: list[IPAddress] = Field(
        description="IP addresses the certificate covers too (the lab connects by address)."
    )
    pki__crl_url: CrlUrl = Field(
        description=(
            "internal mode: the http:// URL of the internal CA's CRL, named as the CRL "
            "distribution point of every host certificate it issues (changing it issues every "
            "host a new certificate). Plain HTTP because a client fetches the CRL before it can "
            "trust TLS (RFC 5280 §4.2.1.13). Ignored in provided mode."
        )
    )
    pki__cert_file: OptionalPath = Field(
        description=(
            "provided mode: the certificate on the controller, PEM, the host certificate first, "
            "then any intermediates. Empty in internal mode."
        )
    )
    pki__key_file: OptionalPath = Field(
        description="provided mode: its private key on the controller, PEM, unencrypted."
    )
    pki__ca_file: OptionalPath = Field(
        description=(
            "provided mode: the CA certificate that issued it, installed in every host's trust "
            "store."
        )
    )
    pki__ca_trust_file: AbsolutePath = Field(
        description=(
            "Where the CA certificate goes in the host's trust store (update-ca-certificates "
            "reads /usr/local/share/ca-certificates/*.crt)."
        )
    )
    pki__reload_services: list[ServiceUnit] = Field(
        description=(
            "Services that serve the certificate and are reloaded when it changes, if they "
            "run on the host (renewal needs no other step)."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        files = {
            "pki__cert_file": self.pki__cert_file,
            "pki__key_file": self.pki__key_file,
            "pki__ca_file": self.pki__ca_file,
        }
        if self.pki__mode == "internal":
            for key, value in files.items():
                if value:
                    yield CrossCheck(
                        (key,), value, "is set but pki__mode is internal, which ignores it",
                        '"" with pki__mode internal, or pki__mode provided',
                    )
            return
        if not self.pki__host_cert_enabled:
            return
        missing = [key for key, value in files.items() if not value]
        for key in missing:
            yield CrossCheck(
                (key,), files[key], "is empty but pki__mode is provided",
                "the path of the file on the controller",
            )
        if missing:
            return
        absent = [key for key, value in files.items() if not Path(value).is_file()]
        for key in absent:
            yield CrossCheck(
                (key,), files[key],
                "is not a file on the controller (the deploy copies it from there)",
                "the path of an existing, readable file on the controller",
            )
        if absent:
            return
        yield from _check_provided(
            Path(self.pki__cert_file), Path(self.pki__key_file), Path(self.pki__ca_file),
            [*self.pki__cert_names, *self.pki__cert_ip_addresses],
        )


def _check_provided(
    cert: Path, key: Path, ca: Path, names: list[str]
) -> Iterator[CrossCheck]:
    """The operator's certificate, key and CA, checked with hopthu.pki's checks."""
    from hopthu import pki

    checks = (
        ("pki__key_file", str(key), lambda: pki.check_pair(cert, key),
         "the unencrypted PEM key of pki__cert_file, and a valid certificate"),
        ("pki__ca_file", str(ca), lambda: pki.check_chain(cert, ca),
         "the PEM certificate of the CA that issued pki__cert_file"),
        ("pki__cert_file", str(cert), lambda: pki.check_names(cert, names),
         ("a certificate whose subjectAltNames cover pki__cert_names and "
          "pki__cert_ip_addresses")),
    )
    for key_name, value, check, allowed in checks:
        try:
            check()
        except pki.PkiError as exc:
            yield CrossCheck((key_name,), value, str(exc), allowed)
            return
