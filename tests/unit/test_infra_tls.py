"""tests/infra/test_tls.py's judgement of a host certificate, on generated certificates."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.infra.test_tls import CHAIN, certificate_problem

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def pem_expiring_in(days: float) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail1.moj.gov.vn")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(NOW - dt.timedelta(days=300))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(("days", "expected"), [
    (60, None), (22.5, None), (21, "expires in"), (10, "expires in 10 days"), (-1, "expired on"),
])
def test_a_certificate_fails_the_check_from_21_days_before_it_expires(days, expected) -> None:
    problem = certificate_problem(pem_expiring_in(days), now=NOW)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem, problem
        assert problem.startswith(CHAIN), "the message names the file on the host"
        assert "renew" in problem
