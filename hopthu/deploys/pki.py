"""The pki deploy: each mail host's TLS certificate and the CA every host trusts.

Where it sits. Every connection a client or another MTA makes to the
ministry's mail hosts is encrypted (Art. 11.5): SMTP on 25 (offered),
submission on 587 and 465, IMAPS 993, POP3S 995, ManageSieve 4190, and
later the password portal. Postfix, Dovecot and nginx serve one key and one
chain per host from pki__tls_dir; Postfix's client and the lab's tests
verify peers against the CA installed here.

What it owns. On the controller, with pki__mode internal: the internal CA
(pki__ca_dir, created once by hopthu/pki.py) and each host's issued files
under pki__ca_dir/hosts/; a certificate is issued again only when it is
missing, its names, key type or CRL URL (pki__crl_url) changed, it was
revoked, or it expires within 30 days. The CA's CRL (pki__ca_dir/ca.crl, DER)
is signed again when a certificate is revoked or fewer than 10 of its 30
days remain. With pki__mode provided, nothing: the operator's files are
checked by the settings check and copied. On the host:
/etc/hopthu/tls/host.key (0600 root:root), /etc/hopthu/tls/host.fullchain.pem
(0644), the CA in the trust store (pki__ca_trust_file) and, with the internal
CA, its CRL in /etc/hopthu/tls/hopthu-ca.crl (0644), for the store host's
nginx to publish later.

How a change is checked. hopthu.pki checks every certificate it issues or is
given before a byte reaches a host. A changed CA updates the trust store; a
changed key or chain reloads the services that serve it, each only if it
runs on the host.

roles/pki/ does the same steps, in the same order, under the same names: its
tasks, then its handlers (tests/unit/test_engine_shape.py checks it). Another
deploy that needs the CA (the lab's peer) calls ``apply()`` with
pki__host_cert_enabled false, or with its own pki__cert_names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from hopthu import pki
from hopthu.deploys.mailhost import host_settings
from hopthu.deploys.secret_files import put_secret
from hopthu.pki_command import ensure_for_host

#: The role's handler script (roles/pki/handlers/main.yml): reload each unit
#: that is running, skip the others.
RELOAD_SCRIPT = (
    'for unit in "$@"; do if systemctl is-active --quiet "$unit"; '
    'then systemctl reload "$unit" || exit 1; fi; done'
)


def prepare_host_certificate(values: dict[str, Any], *, name: str) -> dict[str, Any]:
    """Run ``hopthu pki ensure`` for this host on the controller, as the role does.

    It runs while pyinfra prepares the operations, so that the uploads below
    can compare the files; a failure stops the run before any host changes.
    """
    try:
        return ensure_for_host(values, host.name)
    except pki.PkiError as exc:
        raise DeployError(f"{name}: {host.name}: {exc}") from None


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail host)."""
    values = host_settings()

    prepared = prepare_host_certificate(
        values, name="Prepare the host certificate on the controller"
    )
    files.directory(
        name="Create the TLS directory",
        path="/etc/hopthu/tls",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    key = chain = None
    if values["pki__host_cert_enabled"]:
        key = put_secret(
            name="Install the host private key",
            data=Path(prepared["key_file"]).read_bytes(),
            dest="/etc/hopthu/tls/host.key",
            user="root",
            group="root",
            mode="0600",
        )
        chain = files.put(
            name="Install the host certificate chain",
            src=prepared["fullchain_file"],
            dest="/etc/hopthu/tls/host.fullchain.pem",
            user="root",
            group="root",
            mode="0644",
        )
    ca = files.put(
        name="Install the CA certificate in the trust store",
        src=prepared["ca_file"],
        dest=values["pki__ca_trust_file"],
        user="root",
        group="root",
        mode="0644",
    )
    if values["pki__mode"] == "internal" and values["pki__host_cert_enabled"]:
        # No service reads it yet: a new CRL needs no reload.
        files.put(
            name="Install the certificate revocation list",
            src=prepared["crl_file"],
            dest="/etc/hopthu/tls/hopthu-ca.crl",
            user="root",
            group="root",
            mode="0644",
        )

    # --- What the role's handlers do, in their order, only after a change ---------

    server.shell(
        name="Update the system trust store",
        commands=["update-ca-certificates"],
        _if=ca.did_change,
    )
    if key is not None and chain is not None:
        server.shell(
            name="Reload the services that serve the certificate",
            commands=[
                " ".join(
                    ["sh", "-c", f"'{RELOAD_SCRIPT}'", "reload", *values["pki__reload_services"]]
                )
            ],
            _if=any_changed(key, chain),
        )
