"""testssl.sh against the mail hosts' TLS ports, and what its findings mean here.

The lab TLS test (tests/lab/test_tls.py, ART11-5-TLS) runs Debian's testssl
(package `testssl.sh`, command `testssl`; `socat` for the STARTTLS-injection
check) from the controller, an internal-zone client (LAB.md: never test from
loopback). One scan per host and port:

- SMTP 25 and submission 587 speak STARTTLS (`--starttls smtp`);
- submissions 465, IMAPS 993 and POP3S 995 are implicit TLS (RFC 8314).

Each scan names the host by its public name (the first of pki__cert_names,
e.g. mail1.moj.gov.vn) and connects to its lab address (`--ip`), so testssl
sends that name as SNI and checks the certificate against it; `-n none`
keeps it off DNS (the lab has no route out, and the name is not published to
the controller). The lab CA is passed with `--add-ca`: a self-signed or
unknown chain would add trust findings that hide real ones (LAB.md).

Which checks (`CHECKS`). testssl's default run also does client simulation
(`-c`, ~40 handshakes that only say which browser would pick what) and the
server's cipher preference (`-P`, whose only finding here is the 3.0.8
`cipher_order` complaint, see KNOWN_FINDINGS). The reduced set keeps every
check ART11-5-TLS is about and saves about a quarter of the time per port:

    -p  protocols (SSLv2 ... TLS 1.3)     -S  certificate, chain of trust, names
    -s  cipher categories (NULL, EXPORT,  -U  every vulnerability check (Heartbleed,
        LOW, 3DES, obsolete CBC)              ROBOT, POODLE, SWEET32, LUCKY13, ...)
    -f  forward secrecy, curves, groups   -E  every cipher the server accepts, per
    -h  HTTP headers (skipped for mail        protocol: the evidence of "no weak
        services; with the others it          cipher" on TLS 1.2
        lets testssl 3.2 compute its grade)

HOPTHU_TESTSSL_FULL=1 runs testssl's full default set instead (for an audit
report; about 45-55 s per port instead of 35-40 s on 2 cores).

The exit code of testssl is not a grade (LAB.md): the JSON
(`--jsonfile-pretty`) is parsed, and every HIGH or CRITICAL finding fails
unless it is one of the KNOWN_FINDINGS, matched on the testssl version, the
finding's id, severity and text, so that a new finding, or a known one on a
testssl version nobody reviewed, fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hopthu import ROOT

#: The testssl command of Debian's testssl.sh package.
TESTSSL = "testssl"
#: Where the raw JSON (and the text log) of each scan is kept as evidence; git-ignored.
EVIDENCE_DIR = ROOT / "reports" / "lab" / "testssl"
#: The checks run on each port (see the module docstring for the choice).
CHECKS: tuple[str, ...] = ("-p", "-s", "-f", "-S", "-h", "-U", "-E")
#: Seconds one scan may take before it is killed (a scan takes 35-55 s here).
SCAN_TIMEOUT = 300
#: Scans at once: testssl is a shell script that keeps a core busy; the
#: controller has 2.
PARALLEL = 2
#: TLS ports by inventory group: the MX and submission on mail_mx, mail
#: access on mail_store. The value is the STARTTLS protocol, or None for
#: implicit TLS.
GROUP_PORTS: dict[str, dict[int, str | None]] = {
    "mail_mx": {25: "smtp", 465: None, 587: "smtp"},
    "mail_store": {993: None, 995: None},
}
#: Severities that fail the test unless a KNOWN_FINDINGS entry covers them.
FAILING = ("HIGH", "CRITICAL")
#: Findings with this severity mean testssl could not do its job.
BROKEN = ("FATAL",)


@dataclass(frozen=True)
class Endpoint:
    """One TLS port of one host, as a client on the Internet sees it."""

    host: str
    address: str
    #: The host's public name (the first of pki__cert_names): SNI and the
    #: name the certificate must match.
    name: str
    port: int
    #: "smtp" for STARTTLS ports, None for implicit TLS.
    starttls: str | None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Finding:
    section: str
    id: str
    severity: str
    text: str

    def __str__(self) -> str:
        return f"{self.id} [{self.severity}] {self.text!r}"


@dataclass(frozen=True)
class KnownFinding:
    """A HIGH or CRITICAL finding that is accepted, for one testssl version only."""

    testssl_version: str
    id: str
    severity: str
    text: str
    #: Only on STARTTLS ports.
    starttls_only: bool
    #: If set, every grade-cap reason of the scan must start with one of
    #: these, so the exception covers the grade only when nothing else capped it.
    grade_cap_reasons: tuple[str, ...] = ()
    reason: str = ""


#: The documented exceptions (LAB.md, "testssl.sh: severity exceptions").
#: Nothing else HIGH or CRITICAL passes; a new testssl version must be
#: reviewed and added here on purpose.
KNOWN_FINDINGS: tuple[KnownFinding, ...] = (
    KnownFinding(
        testssl_version="3.2.1",
        id="overall_grade",
        severity="CRITICAL",
        text="T",
        starttls_only=True,
        grade_cap_reasons=("Grade capped to T. STARTTLS is prone to MITM downgrade attacks.",),
        reason=(
            "testssl 3.2.1 (Debian 13) caps every STARTTLS service at grade T because a "
            "man in the middle can strip STARTTLS. That is a property of the protocol, not "
            "of this server: port 25 cannot use implicit TLS (RFC 8314 keeps STARTTLS for "
            "relay), and submission also offers implicit TLS on 465. Only accepted when "
            "the STARTTLS cap is the sole grade-cap reason."
        ),
    ),
    KnownFinding(
        testssl_version="3.0.8",
        id="cipher_order",
        severity="HIGH",
        text="NOT a cipher order configured",
        starttls_only=False,
        reason=(
            "testssl 3.0.8 (Debian 12) rates 'no server cipher order' HIGH, but Mozilla's "
            "intermediate profile, which the Postfix and Dovecot templates follow, sets no "
            "server order on purpose: every cipher offered is strong and the client knows "
            "best (e.g. ChaCha20 on CPUs without AES-NI). Only reported with the full "
            "check set (-P); testssl 3.2 no longer rates it."
        ),
    ),
)


@dataclass
class Scan:
    """One testssl run: its findings and where its evidence is."""

    endpoint: Endpoint
    json_file: Path
    log_file: Path
    returncode: int
    seconds: float
    version: str = ""
    findings: list[Finding] = field(default_factory=list)
    #: Why the scan did not produce usable JSON (timeout, no file...), or "".
    error: str = ""

    def by_id(self, finding_id: str) -> list[Finding]:
        """Findings with this id; certificate ids may carry a " <cert#N>" suffix."""
        return [f for f in self.findings if f.id.split(" ")[0] == finding_id]

    def broken(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in BROKEN]

    def known(self, finding: Finding) -> KnownFinding | None:
        for known in KNOWN_FINDINGS:
            if (known.testssl_version == self.version and known.id == finding.id
                    and known.severity == finding.severity and known.text == finding.text
                    and (self.endpoint.starttls or not known.starttls_only)
                    and self._caps_allowed(known)):
                return known
        return None

    def _caps_allowed(self, known: KnownFinding) -> bool:
        if not known.grade_cap_reasons:
            return True
        caps = [f.text for f in self.findings if f.id.startswith("grade_cap_reason_")]
        return bool(caps) and all(c.startswith(known.grade_cap_reasons) for c in caps)

    def failing(self) -> list[Finding]:
        """HIGH and CRITICAL findings that no KNOWN_FINDINGS entry covers."""
        return [f for f in self.findings if f.severity in FAILING and self.known(f) is None]

    def excepted(self) -> list[tuple[Finding, KnownFinding]]:
        pairs = []
        for f in self.findings:
            known = self.known(f) if f.severity in FAILING else None
            if known is not None:
                pairs.append((f, known))
        return pairs


def endpoints(inventory_name: str = "lab") -> list[Endpoint]:
    """Every TLS port of every mail_mx and mail_store host of the inventory."""
    from hopthu import inventory
    from hopthu.settings import load_host

    inv = inventory.load(inventory_name)
    ports: dict[str, dict[int, str | None]] = {}
    for group, group_ports in GROUP_PORTS.items():
        for host in inv.hosts_in(group):
            ports.setdefault(host, {}).update(group_ports)
    found = []
    for host in inv.hosts:
        if host not in ports:
            continue
        name = str(load_host(inventory_name, host).values["pki__cert_names"][0])
        for port, starttls in sorted(ports[host].items()):
            found.append(Endpoint(host, inv.hosts[host].address, name, port, starttls))
    return found


def checks() -> tuple[str, ...]:
    """The check options: CHECKS, or none (testssl's full default) with HOPTHU_TESTSSL_FULL=1."""
    return () if os.environ.get("HOPTHU_TESTSSL_FULL") == "1" else CHECKS


def command(endpoint: Endpoint, ca_file: Path, json_file: Path) -> list[str]:
    argv = [
        TESTSSL, "--quiet", "--warnings", "batch", "--color", "0",
        "--add-ca", str(ca_file),
        # Bounded: no connect or openssl call may hang a scan.
        "--connect-timeout", "10", "--openssl-timeout", "15",
        "-n", "none", "--ip", endpoint.address,
        "--jsonfile-pretty", str(json_file),
    ]
    if endpoint.starttls:
        argv += ["--starttls", endpoint.starttls]
    return [*argv, *checks(), f"{endpoint.name}:{endpoint.port}"]


def parse(document: dict[str, Any]) -> tuple[str, list[Finding]]:
    """(testssl version, every finding) from a --jsonfile-pretty document."""
    version = str(document.get("version", "")).split(" ")[0]
    findings: list[Finding] = []

    def collect(section: str, items: Iterable[Any]) -> None:
        for item in items:
            if isinstance(item, dict) and "id" in item:
                findings.append(Finding(section, str(item["id"]), str(item.get("severity", "")),
                                        str(item.get("finding", ""))))

    for key, value in document.items():
        if isinstance(value, list) and key != "scanResult":
            collect(key, value)  # clientProblem1, scanProblem... at the top level
    for result in document.get("scanResult", []):
        for section, value in result.items():
            if isinstance(value, list):
                collect(section, value)
    return version, findings


def scan(endpoint: Endpoint, ca_file: Path, evidence_dir: Path = EVIDENCE_DIR,
         timeout: float = SCAN_TIMEOUT) -> Scan:
    """Run testssl against one endpoint; keep its JSON and log in evidence_dir."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{endpoint.host}-{endpoint.port}"
    json_file, log_file = evidence_dir / f"{stem}.json", evidence_dir / f"{stem}.log"
    # testssl refuses to overwrite an existing JSON file (FATAL) unless --append.
    json_file.unlink(missing_ok=True)
    argv = command(endpoint, ca_file, json_file)
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
        returncode, log = proc.returncode, proc.stdout + proc.stderr
        error = ""
    except subprocess.TimeoutExpired as exc:
        returncode = 124
        log = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        error = f"testssl did not finish within {timeout:.0f} s"
    except FileNotFoundError:
        returncode, log = 127, ""
        error = f"no `{TESTSSL}` command: apt-get install testssl.sh socat"
    seconds = time.monotonic() - start
    log_file.write_text(" ".join(argv) + "\n\n" + log)
    result = Scan(endpoint, json_file, log_file, returncode, round(seconds, 1), error=error)
    if not error:
        try:
            result.version, result.findings = parse(json.loads(json_file.read_text()))
        except (OSError, ValueError) as exc:
            result.error = f"testssl wrote no readable JSON ({exc}); exit code {returncode}"
    return result


def scan_all(targets: Sequence[Endpoint], ca_file: Path, evidence_dir: Path = EVIDENCE_DIR,
             parallel: int = PARALLEL) -> dict[Endpoint, Scan]:
    """Scan every endpoint, `parallel` at a time."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = pool.map(lambda e: scan(e, ca_file, evidence_dir), targets)
        return dict(zip(targets, results, strict=True))


#: The cipher suites a scan may find (IANA names): Mozilla's "intermediate"
#: profile (Server Side TLS 5.7), which the Postfix and Dovecot templates
#: follow. TLS 1.2: ECDHE or DHE key exchange (forward secrecy) with an AEAD
#: cipher only; no CBC, no static RSA key exchange, no SHA-1 MAC.
STRONG_CIPHERS = frozenset({
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
})

#: testssl's weak cipher categories (-s): every cipherlist_* finding but
#: STRONG must say "not offered". The obsolete-CBC category is
#: cipherlist_AVERAGE in testssl 3.0 and cipherlist_OBSOLETED from 3.2.
WEAK_CIPHER_CATEGORIES = ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                          "cipherlist_LOW", "cipherlist_3DES_IDEA")
CBC_CATEGORY = ("cipherlist_AVERAGE", "cipherlist_OBSOLETED")
#: Protocols that must be "not offered" (testssl's ids).
OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")
#: Ids every usable scan has: protocols, cipher categories, the certificate
#: chain, the vulnerability checks. A scan without one of them proved nothing.
REQUIRED_IDS = (*OLD_PROTOCOLS, "TLS1_2", "TLS1_3", *WEAK_CIPHER_CATEGORIES,
                "cert_chain_of_trust", "cert_trust", "heartbleed", "ROBOT", "POODLE_SSL",
                "SWEET32", "LUCKY13", "BEAST", "FREAK", "LOGJAM", "DROWN", "RC4",
                "secure_client_renego", "fallback_SCSV")

_CIPHER_ID = re.compile(r"^cipher(-[a-z0-9_]+)?_x[0-9a-f]+$")


def accepted_ciphers(result: Scan) -> list[str]:
    """The IANA names of the cipher suites the server accepted (-E or -e findings).

    A finding reads "xc02b  ECDHE-ECDSA-AES128-GCM-SHA256  ECDH 253  AESGCM  128
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" (3.2 may put the IANA name
    first): the IANA name is the token that starts with TLS_. A suite without
    one (SSLv2, GOST) keeps its last token, which is never in STRONG_CIPHERS.
    """
    names = []
    for f in result.findings:
        if _CIPHER_ID.match(f.id) and f.text.split():
            tokens = f.text.split()
            names.append(next((t for t in tokens if t.startswith("TLS_")), tokens[-1]))
    return names


def weak_categories(result: Scan) -> list[Finding]:
    """testssl's cipher categories other than STRONG (NULL, EXPORT, LOW, 3DES, CBC...)."""
    return [f for f in result.findings
            if f.id.startswith("cipherlist_") and f.id != "cipherlist_STRONG"]


def missing_ids(result: Scan) -> list[str]:
    """The checks a usable scan must contain and this one does not."""
    missing = [i for i in REQUIRED_IDS if not result.by_id(i)]
    if not any(result.by_id(i) for i in CBC_CATEGORY):
        missing.append(" or ".join(CBC_CATEGORY))
    return missing
