"""An authenticated user sends only as an address it owns (Art. 11.5, Art. 13).

smtpd_sender_login_maps names, for each envelope sender, the logins that may
use it: a mailbox's own, and the delegates of a unit mailbox;
reject_sender_login_mismatch refuses the rest at MAIL FROM/RCPT time.
"""

from __future__ import annotations

import pytest
from mailcore import account, mail_core, submission  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("mail_core")]


def _envelope(login: str, sender: str, recipient: str) -> tuple[int, bytes]:
    with submission(account(login)) as client:
        code, text = client.mail(sender)
        if code != 250:
            return code, text
        code, text = client.rcpt(recipient)
        client.rset()
        return code, text


@pytest.mark.control("ART11-5-AUTH")
@pytest.mark.control("ART11-5-RELAY")  # no sender spoofing (Art. 11.5)
def test_authenticated_user_cannot_send_as_another_user() -> None:
    code, text = _envelope("an", account("binh").address, account("chi").address)
    assert code == 553 and b"not owned by user" in text, (
        f"an@ sending as binh@ got {code} {text!r}: sender spoofing must be refused"
    )


@pytest.mark.control("ART11-5-AUTH")
@pytest.mark.control("ART11-5-RELAY")  # no sender spoofing (Art. 11.5)
def test_authenticated_user_cannot_send_as_an_unknown_ministry_address() -> None:
    code, text = _envelope("an", "director@moj.gov.vn", account("chi").address)
    assert code == 553, (code, text)


@pytest.mark.control("ART13-DELEGATE")
def test_a_delegate_may_send_as_the_unit_mailbox() -> None:
    code, text = _envelope("an", account("vanphong").address, account("chi").address)
    assert code == 250, f"an@, a delegate of vanphong@, was refused: {code} {text!r}"


@pytest.mark.control("ART13-DELEGATE")
def test_a_non_delegate_cannot_send_as_the_unit_mailbox() -> None:
    code, text = _envelope("binh", account("vanphong").address, account("chi").address)
    assert code == 553, (code, text)
