"""TLS certificates on the host: there, and not about to expire (Art. 11.5).

A host that serves TLS (the pki role with pki__host_cert_enabled) keeps its
chain in /etc/hopthu/tls/host.fullchain.pem, which Postfix and Dovecot
present. The check fails from 21 days before the certificate expires
(hopthu.pki.WARN_DAYS), with what to do, so `hopthu verify` raises the alarm
while there is time to renew: a certificate of hopthu's internal CA is
renewed by the next deploy, an operator's certificate must be replaced.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hopthu import pki

CHAIN = "/etc/hopthu/tls/host.fullchain.pem"


def certificate_problem(pem: bytes, *, warn_days: int = pki.WARN_DAYS,
                        now: datetime | None = None) -> str | None:
    """What is wrong with the first certificate of `pem` (expired, or expiring within
    `warn_days`), or None when it has time left."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "host.fullchain.pem"
        path.write_bytes(pem)
        problem = pki.expiry_warning(path, warn_days, now=now)
    return problem.replace(str(path), CHAIN) if problem else None


@pytest.mark.control("ART11-5-TLS")
def test_the_host_certificate_is_more_than_21_days_from_expiry(
    host: Any, settings: dict[str, Any]
) -> None:
    if not settings.get("pki__host_cert_enabled"):
        pytest.skip("this host serves no TLS (no pki role, or pki__host_cert_enabled is false)")
    chain = host.file(CHAIN)
    assert chain.exists, f"{CHAIN} is missing: deploy the pki role"
    problem = certificate_problem(chain.content)
    assert problem is None, problem
