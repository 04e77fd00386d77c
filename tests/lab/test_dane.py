"""Outbound DANE through the local validating resolver (Art. 11.5; RFC 7672).

The ministry's MX sends with `smtp_tls_security_level = dane` and
`smtp_dns_support_level = dnssec`, asking its own unbound, which validates
DNSSEC (roles/postfix, roles/common). In the lab the peer's zone peer.test is
signed and every lab resolver trusts its key (roles/lab_peer,
filter_plugins/hopthu_dnssec.py):

- peer1.peer.test publishes a DANE-EE TLSA record (3 1 1) for its key, so
  mail from the ministry to peer.test must go over TLS that Postfix logs as
  *Verified*: DANE authenticated the peer (opportunistic TLS logs
  "Trusted"/"Untrusted" instead);
- dane-broken.peer.test has its MX on the same host, but a TLSA record that
  matches no key. Mail to it must wait in the ministry's queue with
  "certificate not verified", and never arrive (peer1 would accept it).
"""

from __future__ import annotations

import json
import shlex

import pytest
from test_flow import (
    INTERNAL_HOST,
    INTERNET_HOST,
    MINISTRY_SENDER,
    MX,
    PEER_ADDRESS,
    PEER_USER,
    delivery_log,
    queue_id,
    seed_password,
    session_tls,
)
from vantage import maildir_has, run, swaks, token, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.control("ART11-5-TLS"), pytest.mark.control("ART2-FLOW"),
              pytest.mark.usefixtures("converged_lab")]

BROKEN_ADDRESS = f"{PEER_USER}@dane-broken.peer.test"

#: A DNS query over UDP to the host's own resolver, in Python's standard
#: library (the mail hosts have no dig): it asks for the TLSA record of the
#: peer's MX with the AD bit set (RFC 6840 §5.7) and prints the reply's
#: rcode, whether the resolver marked it Authenticated Data, and the number
#: of answers.
AD_QUERY = r"""
import random, socket, struct, sys
name = sys.argv[1]
qid = random.randrange(65536)
question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
packet = struct.pack(">HHHHHH", qid, 0x0120, 1, 0, 0, 0) + question + struct.pack(">HH", 52, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(packet, ("127.0.0.1", 53))
reply = s.recv(4096)
rid, flags, qd, an = struct.unpack(">HHHH", reply[:8])
assert rid == qid, "reply to another query"
print(flags & 0xF, bool(flags & 0x0020), an)
"""


def resolver_answer(host: str, name: str) -> tuple[int, bool, int]:
    result = run(host, f"python3 -c {shlex.quote(AD_QUERY)} {shlex.quote(name)}", timeout=30)
    assert result.rc == 0, f"the DNS query on {host} failed: {result.out} {result.err}"
    rcode, ad, answers = result.out.split()
    return int(rcode), ad == "True", int(answers)


def test_the_mx_resolver_validates_the_peers_tlsa_record(lab_hosts) -> None:
    rcode, authenticated, answers = resolver_answer(MX, "_25._tcp.peer1.peer.test")
    assert (rcode, answers) == (0, 1), (
        f"{MX}'s resolver did not answer the TLSA record of peer1.peer.test "
        f"(rcode {rcode}, {answers} answers): is the zone served and signed on peer1?"
    )
    assert authenticated, (
        f"{MX}'s unbound answered the TLSA record without the AD flag: it did not validate "
        "the signed zone, so Postfix would ignore the record (DANE needs DNSSEC). Check "
        "common__resolver_trust_anchors and `unbound-control list_auth_zones`."
    )


def submit(recipient: str, mark: str, lab_hosts: dict[str, str]) -> str:
    sent = swaks(INTERNAL_HOST, "--server", lab_hosts[MX], "--port", "587", "--tls",
                 "--auth", "PLAIN", "--auth-user", MINISTRY_SENDER,
                 "--auth-password", seed_password(MINISTRY_SENDER),
                 "--from", MINISTRY_SENDER, "--to", recipient, "--header", f"Subject: {mark}")
    return queue_id(sent.out)


def test_mail_to_the_peer_goes_over_dane_verified_tls(lab_hosts) -> None:
    mark = token()
    queue = submit(PEER_ADDRESS, mark, lab_hosts)
    assert wait_for(lambda: "status=sent" in delivery_log(MX, queue)), (
        f"{MX} did not deliver {queue} to {PEER_ADDRESS}:\n{delivery_log(MX, queue)}"
    )
    log = run(MX, "journalctl --no-pager -q --since=-15min -t postfix/smtp "
              "--output-fields=MESSAGE,_PID -o json", timeout=30).out
    tls = session_tls(log, queue)
    assert tls.startswith("Verified TLS connection established to peer1.peer.test"), (
        f"{MX} did not authenticate peer1 with DANE: {tls or 'no TLS session logged'}. "
        "'Trusted'/'Untrusted' means Postfix found no usable TLSA record: is the TLSA "
        "record validated (AD flag) and does it match peer1's key?"
    )


def test_mail_to_a_domain_whose_tlsa_matches_no_key_stays_queued(lab_hosts) -> None:
    mark = token()
    queue = submit(BROKEN_ADDRESS, mark, lab_hosts)
    try:
        deferred = wait_for(lambda: "status=deferred" in delivery_log(MX, queue))
        log = delivery_log(MX, queue)
        assert deferred and "certificate not verified" in log.lower(), (
            f"{MX} did not defer {queue} to {BROKEN_ADDRESS} for a failed DANE check:\n{log}"
        )
        assert "status=sent" not in log, f"{MX} delivered despite the TLSA mismatch:\n{log}"
        queued = run(MX, "postqueue -j", timeout=30).out
        ids = {json.loads(line)["queue_id"] for line in queued.splitlines() if line.strip()}
        assert queue in ids, f"{queue} is no longer in {MX}'s queue, yet it was never sent"
        assert not maildir_has(INTERNET_HOST, f"/home/{PEER_USER}/Maildir", mark), (
            f"the message {mark} reached peer1 although its TLSA record matches no key"
        )
    finally:
        run(MX, f"postsuper -d {shlex.quote(queue)}", timeout=30)
