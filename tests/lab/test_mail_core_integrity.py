"""No message is lost or duplicated while the mailbox store is down (Art. 7, 8).

Dovecot is stopped; 20 messages from the Internet zone are accepted by
Postfix and wait in its queue (postqueue -j). Dovecot starts, the queue is
flushed, and each of the 20 arrives exactly once.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from mailcore import PEER_SMTP, account, mail_core, on_host, on_peer, wait_for  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.control("ART7-INTEGRITY"),
              pytest.mark.usefixtures("mail_core")]

COUNT = 20


def _queued_for(recipient: str) -> int:
    entries = [json.loads(line) for line in on_host("mail1", "postqueue -j").splitlines()]
    return sum(1 for e in entries if any(r["address"] == recipient for r in e["recipients"]))


#: Stop Dovecot and wait until its master process is gone. --no-block: in the
#: lab, systemd may wait its full stop timeout for the unit's cgroup to empty
#: when another lab host runs the same unit (the hosts share one unified
#: cgroup tree), although no process of this host is left.
STOP = ("systemctl stop --no-block dovecot.service; "
        "for i in $(seq 60); do pgrep -x dovecot >/dev/null || exit 0; sleep 0.5; done; exit 1")
#: Start it (after any pending stop job), wait until its LMTP socket answers,
#: then have Postfix retry its queue at once.
START = (
    "systemctl start dovecot.service && "
    "python3 -c 'import socket, time\n"
    "for _ in range(60):\n"
    "    s = socket.socket(socket.AF_UNIX)\n"
    "    try:\n"
    "        s.connect(\"/var/spool/postfix/private/dovecot-lmtp\"); s.recv(64); break\n"
    "    except OSError: time.sleep(0.5)\n"
    "    finally: s.close()\n"
    "else: raise SystemExit(\"LMTP does not answer\")' && postqueue -f"
)


@pytest.fixture
def dovecot_stopped():
    on_host("mail1", STOP, timeout=60)
    try:
        yield
    finally:
        on_host("mail1", START, timeout=180)


def test_mail_waits_in_the_queue_while_dovecot_is_down_and_arrives_once(dovecot_stopped) -> None:
    binh = account("binh")
    token = f"integrity-{uuid.uuid4().hex[:10]}"
    # A tagged address of binh@ (recipient_delimiter): delivered to binh@'s
    # INBOX, and in the queue it tells this run's messages from any other.
    local, domain = binh.address.split("@")
    recipient = f"{local}+{token}@{domain}"
    # From peer1 ("the Internet") on port 25, one session, 20 transactions.
    # The null sender needs no DNS for its domain (the lab's DNS may be absent).
    sent = on_peer(PEER_SMTP + f"""
import smtplib
s = smtplib.SMTP(TARGET, 25, timeout=30)
s.ehlo("peer1.peer.test")
ids = []
for n in range({COUNT}):
    mid = "<{token}-%02d@peer.test>" % n
    msg = ("From: tester@peer.test\\r\\nTo: {recipient}\\r\\nSubject: {token} %02d\\r\\n"
           "Message-ID: %s\\r\\n\\r\\nmessage %02d\\r\\n") % (n, mid, n)
    s.sendmail("", [{recipient!r}], msg)
    ids.append(mid)
s.quit()
print(json.dumps(ids))
""", timeout=120)
    assert len(sent) == COUNT

    deadline = time.monotonic() + 30
    while _queued_for(recipient) < COUNT and time.monotonic() < deadline:
        time.sleep(1)
    assert _queued_for(recipient) == COUNT, (
        "the messages are not all waiting in Postfix's queue while Dovecot is down"
    )

    on_host("mail1", START, timeout=180)
    # A delivery attempt that began while Dovecot was still down (the lmtp
    # client spends about a second on a refused socket) can end after the
    # flush and put its message back in the deferred queue with Postfix's
    # 300 s minimal_backoff_time. That is a delay, not a loss: flush again
    # (bounded) until nothing of this run is queued, then count the mailbox.
    deadline = time.monotonic() + 90
    while _queued_for(recipient) and time.monotonic() < deadline:
        time.sleep(3)
        on_host("mail1", "postqueue -f")
    assert _queued_for(recipient) == 0, "messages are still queued 90 s after Dovecot came back"
    found = wait_for(binh, ["SUBJECT", token], count=COUNT, timeout=60)
    ids = [line.split(b":", 1)[1].strip().decode()
           for raw in found for line in raw.splitlines() if line.lower().startswith(b"message-id:")]
    assert sorted(ids) == sorted(sent), (
        f"after the flush {len(found)} messages arrived for {COUNT} sent; "
        f"missing {sorted(set(sent) - set(ids))}, extra {sorted(set(ids) - set(sent))}"
    )
