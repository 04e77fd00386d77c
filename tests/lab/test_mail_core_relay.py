"""No open relay, no forged ministry sender from the Internet (Art. 11.5).

The clients sit where an attacker sits: on peer1, in the lab's Internet
zone, and on the controller in the internal zone, which gets no free pass
either (LAB.md: never from loopback on mail1). Relay attempts are matched on
"Relay access denied", not on any refusal, so that a DNS failure cannot
pass for a relay check.
"""

from __future__ import annotations

import smtplib

import pytest
from mailcore import PEER_SMTP, address, mail_core, on_peer  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.control("ART11-5-RELAY"),
              pytest.mark.usefixtures("mail_core")]


def test_unauthenticated_relay_from_the_internet_is_refused() -> None:
    replies = on_peer(PEER_SMTP + """
print(json.dumps(exchange(25, ["MAIL FROM:<>", "RCPT TO:<victim@example.org>"])))
""")
    code, text = replies[-1]
    assert code == 554 and "Relay access denied" in text, (
        f"peer1 -> port 25, RCPT TO an outside address got {code} {text!r}: mail1 must not relay"
    )


def test_relay_from_the_internal_network_needs_a_login_too() -> None:
    with smtplib.SMTP(address(), 25, timeout=30) as client:
        client.ehlo("client.lab.test")
        client.docmd("MAIL FROM:<>")
        code, text = client.docmd("RCPT TO:<victim@example.org>")
    assert code == 554 and b"Relay access denied" in text, (code, text)


def test_internet_mail_claiming_a_ministry_sender_is_refused() -> None:
    replies = on_peer(PEER_SMTP + """
print(json.dumps(exchange(25, ["MAIL FROM:<an@moj.gov.vn>", "RCPT TO:<binh@moj.gov.vn>"])))
""")
    code, text = replies[-1]
    assert code in (550, 553, 554) and "Sender address rejected" in text, (
        f"unauthenticated mail from an@moj.gov.vn on port 25 got {code} {text!r}; the "
        f"ministry's users send on 587/465 with a login, so this must be refused"
    )


def test_submission_without_a_login_relays_nothing() -> None:
    replies = on_peer("""
import json, smtplib, ssl
s = smtplib.SMTP(TARGET, 587, timeout=30)
s.ehlo("peer1.peer.test")
s.starttls(context=ssl._create_unverified_context())  # the relay check, not TLS, is tested
s.ehlo("peer1.peer.test")
out = [list(s.docmd("MAIL FROM:<someone@example.org>")),
       list(s.docmd("RCPT TO:<victim@example.org>"))]
s.quit()
print(json.dumps([[c, t.decode()] for c, t in out]))
""")
    code, text = replies[-1]
    assert 500 <= code < 600, f"587 without AUTH accepted a relay: {code} {text!r}"
