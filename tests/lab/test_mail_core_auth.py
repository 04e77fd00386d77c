"""No password crosses the network in clear, and guessing is slow (Art. 11.5, Art. 14).

Negative checks run from peer1 or the controller, never from loopback on
mail1, which Dovecot and Postfix treat as secure (LAB.md).
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import time

import pytest
from mailcore import (  # noqa: F401  (mail_core is a fixture)
    PEER_SMTP,
    ManageSieve,
    account,
    address,
    lab_settings,
    mail_core,
    on_host,
    on_peer,
    submission,
    tls_context,
)

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("mail_core")]


@pytest.mark.control("ART11-5-AUTH")
def test_submission_refuses_auth_before_starttls() -> None:
    replies = on_peer(PEER_SMTP + """
print(json.dumps(exchange(587, ["AUTH PLAIN AGFuQG1vai5nb3Yudm4Ad3Jvbmc="])))
""")
    ehlo_code, ehlo_text = replies[0]
    assert ehlo_code == 250 and "AUTH" not in ehlo_text, (
        f"587 offers AUTH before STARTTLS: {ehlo_text!r}"
    )
    code, text = replies[-1]
    assert 500 <= code < 600, f"AUTH before STARTTLS got {code} {text!r}"


@pytest.mark.control("ART11-5-AUTH")
@pytest.mark.parametrize("port", [143, 110], ids=["imap", "pop3"])
def test_plaintext_imap_and_pop3_ports_do_not_answer(port: int) -> None:
    with pytest.raises(OSError):
        socket.create_connection((address(), port), timeout=5).close()
    listening = on_host("mail1", "ss -Hltn")
    assert f":{port} " not in listening, f"something listens on {port} on mail1:\n{listening}"


@pytest.mark.control("ART11-5-AUTH")
def test_managesieve_refuses_login_before_starttls() -> None:
    chi = account("chi")
    session = ManageSieve()
    try:
        assert session.sasl_mechanisms() == [], (
            f"ManageSieve offers SASL before STARTTLS: {session.sasl_mechanisms()}"
        )
        assert session.authenticate(chi).startswith(b"NO"), "login in clear was accepted"
    finally:
        session.close()
    session = ManageSieve()
    try:
        session.starttls()
        assert "PLAIN" in session.sasl_mechanisms()
        assert session.authenticate(chi).startswith(b"OK")
    finally:
        session.close()


def _imap_login_seconds(user: str, password: str) -> tuple[float, bool]:
    client = imaplib.IMAP4_SSL(address(), 993, ssl_context=tls_context(), timeout=60)
    started = time.monotonic()
    try:
        client.login(user, password)
        ok = True
    except imaplib.IMAP4.error:
        ok = False
    elapsed = time.monotonic() - started
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        pass
    return elapsed, ok


@pytest.mark.control("ART11-5-AUTH")
def test_a_wrong_password_is_answered_only_after_the_failure_delay() -> None:
    # Behaviour, not a benchmark: a failed login is held back by
    # dovecot__auth_failure_delay; a good one is not. Dovecot measures the
    # delay on its whole-second clock and checks every 0.5 s
    # (auth-request-handler.c, auth_request_handler_flush_failures), so the
    # answer comes between delay - 1 and delay + 0.5 seconds after the login.
    delay = lab_settings()["dovecot__auth_failure_delay"]
    binh = account("binh")
    good, ok = _imap_login_seconds(binh.address, binh.password)
    assert ok
    bad, ok = _imap_login_seconds(binh.address, binh.password + "-wrong")
    assert not ok
    assert bad >= delay - 1, (
        f"a failed login was answered after {bad:.2f}s; dovecot__auth_failure_delay = {delay}s "
        f"allows no less than {delay - 1}s"
    )
    assert good < delay - 1 < bad, f"a good login took {good:.2f}s, as long as a failure"


@pytest.mark.control("ART11-5-AUTH")
def test_smtp_auth_with_a_wrong_password_is_refused() -> None:
    chi = account("chi")
    with submission(None) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        client.login(chi.address, chi.password + "-wrong")


@pytest.mark.control("ART14-FIRST-LOGIN")
def test_an_account_with_its_initial_password_cannot_read_or_send_mail() -> None:
    new = account("moi")
    client = imaplib.IMAP4_SSL(address(), 993, ssl_context=tls_context(), timeout=60)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="password portal"):
            client.login(new.address, new.password)
    finally:
        client.shutdown()
    with submission(None) as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
        smtp.login(new.address, new.password)
