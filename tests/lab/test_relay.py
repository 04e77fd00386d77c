"""Nobody on the Internet can relay through the ministry's MX (Art. 11.5).

From peer1, "the Internet" (LAB.md: relay tests run from another host,
never from loopback, which Postfix trusts), swaks opens SMTP to mail1:25 and
asks for recipients outside the ministry, directly and through the classic
routing tricks an open-relay scanner tries: the % hack, ! bang paths,
quoted local parts, source routes and a second @. Each must be refused at
RCPT TO with a 5xx and the exact reason; the session ends there, so nothing
is ever queued. Mail that claims a ministry sender from outside is refused
too: the ministry's users send only after logging in (587, 465).

tests/lab/test_mail_core_relay.py (the mail core's) checks the plain
cases: relay from either zone, a forged ministry sender to a ministry
recipient, submission without a login. This file adds the routing tricks
and the forged ministry sender writing to the outside.

Postfix answers `Relay access denied` for foreign destinations
(reject_unauth_destination, which also refuses sender-specified routing;
postconf(5)). LAB.md: match that exact text, because other refusals such as
`450 Domain not found` would hide whether relaying was really refused.
"""

from __future__ import annotations

import pytest
from vantage import smtp_reply, swaks

# converged_lab: every host deployed first (one Ansible run per session).
pytestmark = [pytest.mark.lab, pytest.mark.control("ART11-5-RELAY"), pytest.mark.usefixtures("converged_lab")]

INTERNET_HOST = "peer1"
MX = "mail1"
FOREIGN_SENDER = "alice@peer.test"
PEER_HELO = "peer1.peer.test"

RELAY_DENIED = "Relay access denied"
SPOOF_REFUSED = "Sender address rejected: Mail from moj.gov.vn must be sent by a logged-in user"


def ask(lab_hosts, sender: str, recipient: str) -> str:
    """MAIL FROM `sender`, RCPT TO `recipient` on mail1:25 from peer1; the reply to RCPT TO."""
    result = swaks(INTERNET_HOST, "--server", lab_hosts[MX], "--port", "25",
                   "--ehlo", PEER_HELO, "--from", sender, "--to", recipient,
                   "--quit-after", "RCPT")
    reply = smtp_reply(result.out)
    assert reply, (
        f"no SMTP reply to RCPT TO from {MX}:25 (swaks exit {result.rc}); is Postfix "
        f"running on {MX}? Transcript:\n{result.out}\n{result.err}"
    )
    return reply


def assert_refused(reply: str, reason: str, recipient: str) -> None:
    assert reply.startswith("554 5.7.1 ") and reason in reply, (
        f"RCPT TO:<{recipient}> from the Internet got {reply!r}; it must be refused with "
        f"554 5.7.1 ... {reason!r}. mail1 may be an open relay: check smtpd_relay_restrictions "
        f"(permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination) and that "
        f"mynetworks holds only loopback."
    )


@pytest.mark.parametrize("recipient", [
    # The plain case first: what every trick below must come down to.
    pytest.param("bob@peer.test", id="plain"),
    pytest.param("user%peer.test@moj.gov.vn", id="percent-hack"),
    pytest.param("peer.test!user@moj.gov.vn", id="bang-path"),
    pytest.param('"user@peer.test"@moj.gov.vn', id="quoted-local-part"),
    pytest.param("@moj.gov.vn:user@peer.test", id="source-route"),
    pytest.param("user@peer.test@moj.gov.vn", id="double-at"),
])
def test_mx_refuses_sender_specified_routing_tricks(lab_hosts, recipient: str) -> None:
    reply = ask(lab_hosts, FOREIGN_SENDER, recipient)
    assert_refused(reply, RELAY_DENIED, recipient)


def test_mx_refuses_an_unauthenticated_ministry_sender_to_an_outside_recipient(lab_hosts) -> None:
    # Either refusal is right, each for its own reason; the sender check
    # comes first (smtpd_sender_restrictions before smtpd_relay_restrictions).
    reply = ask(lab_hosts, "an@moj.gov.vn", "bob@peer.test")
    assert reply.startswith("554 5.7.1 ") and (SPOOF_REFUSED in reply or RELAY_DENIED in reply), (
        f"an unauthenticated client on the Internet claiming an@moj.gov.vn got {reply!r} for "
        f"an outside recipient; it must be refused (554 5.7.1)."
    )
