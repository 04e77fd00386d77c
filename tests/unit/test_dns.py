"""`hopthu dns` prints the ministry's mail records, and the lab's DNS serves the same.

The records come from filter_plugins/hopthu_dns.py and the dns__* settings
(hopthu/schema/dns.py). These tests check, for every inventory, that the
records a DNS administrator must publish are there and right (MX, SPF,
DMARC, MTA-STS, TLS-RPT, RFC 6186 SRV, autoconfig, TLSA from a
certificate), that the output is a zone file a real parser accepts, that it
does not change between runs, and that the zone peer1 serves in the lab
(templates/lab_peer/etc/nsd/zones/ministry.zone.j2) holds exactly the records
`hopthu dns --inventory lab` prints.

The zone text is parsed with dnspython when it is installed (the dev extras
should list it), otherwise with nsd-checkzone or named-checkzone if the
controller has one; without any, those tests are skipped and say what to
install.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import re
import shutil
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hopthu import dns as hdns
from hopthu import pki
from hopthu.cli import main
from hopthu.render import render
from hopthu.settings import load_host, load_inventory

REC = hdns.records_module()
INVENTORIES = ("lab", "staging", "production")
DOMAIN = "moj.gov.vn"


def publication(inventory: str, **tlsa) -> hdns.Publication:
    """The records of `inventory` without reading this controller's certificates."""
    source = hdns.TlsaSource(from_settings=False, **tlsa)
    return hdns.publication(inventory, tlsa=source)


def records(pub: hdns.Publication, rtype: str, owner: str | None = None) -> list[str]:
    return [
        r["rdata"] for r in pub.records()
        if r["type"] == rtype and (owner is None or r["owner"] == owner)
    ]


# --- A zone parser ----------------------------------------------------------------------


def _zone_with_apex(origin: str, fragment: str) -> str:
    """`fragment` made a whole zone: the SOA and NS a DNS administrator has already."""
    return (
        f"$ORIGIN {origin}.\n$TTL 300\n"
        f"@ IN SOA ns1.{origin}. hostmaster.{origin}. ( 1 3600 600 86400 60 )\n"
        f"@ IN NS ns1.{origin}.\n"
        f"ns1.{origin}. IN A 192.0.2.53\n"
        f"{fragment}"
    )


def parse_zone(origin: str, text: str) -> dict[tuple[str, str], set[str]]:
    """(owner, type) -> {rdata} of a whole zone, or fail naming the parser's complaint."""
    try:
        import dns.exception
        import dns.rdatatype
        import dns.zone
    except ImportError:
        dns = None
    if dns is not None:
        try:
            zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=True)
        except (dns.exception.DNSException, ValueError) as exc:
            pytest.fail(f"dnspython refuses the zone {origin}: {exc}\n{text}")
        found: dict[tuple[str, str], set[str]] = {}
        for name, rdataset in zone.iterate_rdatasets():
            key = (name.to_text(), dns.rdatatype.to_text(rdataset.rdtype))
            found.setdefault(key, set()).update(rd.to_text() for rd in rdataset)
        return found
    checker = shutil.which("nsd-checkzone") or shutil.which("named-checkzone")
    if checker is None:
        pytest.skip("no zone parser: install dnspython (pip install dnspython, the dev "
                    "extras) or nsd / bind9-utils on the controller")
    return _parse_with(checker, origin, text)


def _parse_with(checker: str, origin: str, text: str) -> dict[tuple[str, str], set[str]]:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".zone") as handle:
        handle.write(text)
        handle.flush()
        proc = subprocess.run([checker, origin, handle.name], check=False,
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{checker} refuses the zone {origin}:\n{proc.stdout}{proc.stderr}"
    return {}


# --- The records, for every inventory ------------------------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_mx_names_every_published_mx_host_at_one_preference(inventory: str) -> None:
    pub = publication(inventory)
    settings = load_host(inventory, next(iter(load_inventory(inventory))))
    mx_hosts = [h["name"] for h in settings["dns__hosts"] if "mx" in h["services"]]
    assert records(pub, "MX", f"{DOMAIN}.") == [f"10 {name}." for name in mx_hosts]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_published_host_has_its_address_and_ptr(inventory: str) -> None:
    pub = publication(inventory)
    values = next(iter(load_inventory(inventory).values())).values
    for host in values["dns__hosts"]:
        for address in host["addresses"]:
            assert address in records(pub, "A", f"{host['name']}."), (
                f"{inventory}: no A record {host['name']} -> {address}"
            )
            ptr = [r for r in pub.reverse if r["rdata"] == f"{host['name']}."]
            assert ptr, f"{inventory}: no PTR record for {address} ({host['name']})"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_spf_lets_only_the_mx_hosts_send(inventory: str) -> None:
    pub = publication(inventory)
    assert records(pub, "TXT", f"{DOMAIN}.") == ['"v=spf1 mx -all"']
    for host in next(iter(load_inventory(inventory).values())).values["dns__hosts"]:
        if "mx" in host["services"]:
            assert records(pub, "TXT", f"{host['name']}.") == ['"v=spf1 a -all"'], (
                f"{host['name']} needs an SPF record for its HELO name (RFC 7208 §2.3)"
            )


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_dmarc_tells_receivers_to_reject_spoofed_ministry_mail(inventory: str) -> None:
    pub = publication(inventory)
    assert records(pub, "TXT", f"_dmarc.{DOMAIN}.") == [
        '"v=DMARC1; p=reject; rua=mailto:postmaster@moj.gov.vn"'
    ]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_mta_sts_id_is_the_digest_of_the_policy_it_announces(inventory: str) -> None:
    pub = publication(inventory)
    assert pub.mta_sts_policy is not None
    lines = pub.mta_sts_policy.split("\r\n")
    assert lines[0] == "version: STSv1" and "mode: enforce" in lines
    assert pub.mta_sts_policy.endswith("\r\n") and "\n" not in pub.mta_sts_policy.replace(
        "\r\n", ""), "RFC 8461 §3.2: the policy's lines end in CRLF"
    mx = [f"mx: {rd.split()[1].rstrip('.')}" for rd in records(pub, "MX")]
    assert [line for line in lines if line.startswith("mx:")] == mx
    digest = hashlib.sha256(pub.mta_sts_policy.encode()).hexdigest()[:16]
    assert records(pub, "TXT", f"_mta-sts.{DOMAIN}.") == [f'"v=STSv1; id={digest}"']
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", digest), "RFC 8461 §3.1: id is 1-32 alphanumerics"


def test_mta_sts_id_changes_exactly_when_the_policy_does() -> None:
    hosts = [{"host": "m", "name": "m.moj.gov.vn", "addresses": ["192.0.2.1"],
              "services": ["mx", "web"]}]
    one = REC.mta_sts_policy(DOMAIN, hosts, "enforce", 604800)
    assert REC.mta_sts_id(one) == REC.mta_sts_id(REC.mta_sts_policy(DOMAIN, hosts, "enforce",
                                                                      604800))
    assert REC.mta_sts_id(one) != REC.mta_sts_id(REC.mta_sts_policy(DOMAIN, hosts, "testing",
                                                                     604800))


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_tls_reports_go_to_an_address_of_the_domain(inventory: str) -> None:
    pub = publication(inventory)
    assert records(pub, "TXT", f"_smtp._tls.{DOMAIN}.") == [
        '"v=TLSRPTv1; rua=mailto:postmaster@moj.gov.vn"'
    ]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_clients_find_implicit_tls_services_and_no_clear_text_ones(inventory: str) -> None:
    pub = publication(inventory)
    hosts = next(iter(load_inventory(inventory).values())).values["dns__hosts"]

    def targets(service: str) -> list[str]:
        return [f"{h['name']}." for h in hosts if service in h["services"]]

    for label, port, service in (("_submissions", 465, "submission"),
                                 ("_submission", 587, "submission"),
                                 ("_imaps", 993, "imap"), ("_pop3s", 995, "pop3")):
        found = records(pub, "SRV", f"{label}._tcp.{DOMAIN}.")
        assert [rd.split()[3] for rd in found] == targets(service), label
        assert {int(rd.split()[2]) for rd in found} == {port}, label
    # RFC 8314 §3 and RFC 6186 §3.4: lower priority wins: implicit TLS, IMAP.
    assert records(pub, "SRV", f"_submissions._tcp.{DOMAIN}.")[0].startswith("0 ")
    assert records(pub, "SRV", f"_submission._tcp.{DOMAIN}.")[0].startswith("10 ")
    for label in ("_imap", "_pop3"):
        assert records(pub, "SRV", f"{label}._tcp.{DOMAIN}.") == ["0 0 0 ."], (
            f"{label}: only implicit TLS is offered, so the clear-text service must point to '.'"
        )


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_autoconfig_names_point_to_the_web_host(inventory: str) -> None:
    pub = publication(inventory)
    hosts = next(iter(load_inventory(inventory).values())).values["dns__hosts"]
    web = [f"{h['name']}." for h in hosts if "web" in h["services"]]
    for name in ("autoconfig", "autodiscover", "mta-sts"):
        assert records(pub, "CNAME", f"{name}.{DOMAIN}.") == web, name
    assert records(pub, "SRV", f"_autodiscover._tcp.{DOMAIN}.") == [f"0 1 443 {web[0]}"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_the_output_is_a_zone_file_a_parser_accepts(inventory: str) -> None:
    text = hdns.zone_text(publication(inventory))
    parsed = parse_zone(DOMAIN, _zone_with_apex(DOMAIN, text))
    if parsed:  # dnspython: every record printed is in the parsed zone
        for r in publication(inventory).records():
            rdatas = parsed.get((r["owner"], r["type"]), set())
            assert r["rdata"] in rdatas, f"{r} did not parse as printed; parsed {rdatas}"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_the_same_settings_print_the_same_bytes(inventory: str) -> None:
    outputs = []
    for _ in range(2):
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["dns", "--inventory", inventory, "--no-tlsa"]) == 0
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    assert outputs[0] == hdns.zone_text(publication(inventory))


def test_json_output_carries_the_same_records() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["dns", "--inventory", "lab", "--format", "json", "--no-tlsa"]) == 0
    data = json.loads(out.getvalue())
    pub = publication("lab")
    assert [{k: r[k] for k in ("owner", "ttl", "class", "type", "rdata")}
            for r in data["records"]] == pub.records()
    assert data["mta_sts"]["policy"] == pub.mta_sts_policy
    assert data["mta_sts"]["url"] == "https://mta-sts.moj.gov.vn/.well-known/mta-sts.txt"


def test_the_mta_sts_policy_file_is_written_as_served(tmp_path: Path) -> None:
    policy = tmp_path / "mta-sts.txt"
    with redirect_stdout(io.StringIO()):
        assert main(["dns", "-i", "lab", "--no-tlsa", "--mta-sts-policy", str(policy)]) == 0
    assert policy.read_bytes() == publication("lab").mta_sts_policy.encode()


# --- DKIM: the MX hosts' public keys, from the controller's copies ---------------------------


def dkim_value(bits: int = 2048) -> str:
    """A DKIM key record as the rspamd role writes it: the key's SubjectPublicKeyInfo."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode("ascii")


def test_without_dkim_keys_the_output_names_each_mx_host_to_deploy(tmp_path: Path) -> None:
    pub = hdns.publication("lab", tlsa=hdns.TlsaSource(from_settings=False), dkim_dir=tmp_path)
    text = hdns.zone_text(pub)
    assert [r for r in pub.records() if "_domainkey" in r["owner"]] == []
    assert "No public key yet for: mail1 (selector mail1, moj.gov.vn); mail2" in text
    assert f"Read from {tmp_path}" in text


def test_dkim_records_come_from_the_controllers_copies(tmp_path: Path) -> None:
    value = dkim_value()
    (tmp_path / "mail1._domainkey.moj.gov.vn.txt").write_text(value + "\n")
    (tmp_path / "other._domainkey.example.org.txt").write_text(dkim_value(2048) + "\n")
    pub = hdns.publication("lab", tlsa=hdns.TlsaSource(from_settings=False), dkim_dir=tmp_path)
    [rdata] = records(pub, "TXT", "mail1._domainkey.moj.gov.vn.")
    assert "".join(re.findall(r'"([^"]*)"', rdata)) == value
    text = hdns.zone_text(pub)
    assert "No public key yet for: mail2 (selector mail2, moj.gov.vn)" in text
    assert "example.org" not in text, "a key of a domain nobody signs must not be printed"
    parsed = parse_zone(DOMAIN, _zone_with_apex(DOMAIN, text))
    if parsed:
        [txt] = parsed[("mail1._domainkey.moj.gov.vn.", "TXT")]
        assert "".join(re.findall(r'"([^"]*)"', txt)) == value


def test_the_lab_zone_serves_the_dkim_records_hopthu_dns_prints(peer1: dict,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "mail1._domainkey.moj.gov.vn.txt").write_text(dkim_value() + "\n")
    (tmp_path / "mail2._domainkey.moj.gov.vn.txt").write_text(dkim_value(3072) + "\n")
    served = render("lab_peer/etc/nsd/zones/ministry.zone.j2",
                    {**peer1, "dns__dkim_dir": str(tmp_path)})
    pub = hdns.publication("lab", tlsa=hdns.TlsaSource(from_settings=False), dkim_dir=tmp_path)
    assert _record_lines(served) == _record_lines(hdns.zone_text(pub))
    assert sum("._domainkey.moj.gov.vn." in line for line in _record_lines(served)) == 2
    parse_zone(DOMAIN, served)


def test_dkim_records_of_other_signing_domains_are_printed_for_their_own_zones(
    tmp_path: Path,
) -> None:
    @dataclasses.dataclass
    class Host:
        values: dict

    settings = {"mx1": Host({"dns__dkim_dir": str(tmp_path), "rspamd__dkim_selector": "mx1",
                             "rspamd__dkim_domains": [DOMAIN, "tuphap.gov.vn"]})}
    (tmp_path / "mx1._domainkey.tuphap.gov.vn.txt").write_text(dkim_value() + "\n")
    keys = hdns.dkim_keys(settings, DOMAIN)
    assert list(keys.others) == ["tuphap.gov.vn"] and keys.main == {}
    assert "mx1 (selector mx1, moj.gov.vn)" in keys.note
    assert "tuphap.gov.vn)" not in keys.note


def test_a_file_that_is_not_a_dkim_record_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "mail1._domainkey.moj.gov.vn.txt"
    bad.write_text("mail1._domainkey IN TXT ( \"v=DKIM1; k=rsa; \" ) ;\n")
    with pytest.raises(REC.DnsRecordError, match="mail1._domainkey.moj.gov.vn.txt"):
        REC.dkim_public_keys(str(tmp_path), DOMAIN)
    assert main(["dns", "-i", "lab", "--no-tlsa", "--dkim-dir", str(tmp_path)]) == 2


def test_the_dkim_filter_reads_nothing_from_a_directory_not_made_yet(tmp_path: Path) -> None:
    assert REC.dkim_public_keys(str(tmp_path / "not-yet"), DOMAIN) == {}
    with pytest.raises(REC.DnsRecordError, match="dns__dkim_dir"):
        REC.dkim_public_keys("relative/dir", DOMAIN)


def test_the_dkim_filter_returns_each_selector_of_the_domain_sorted(tmp_path: Path) -> None:
    for selector in ("mx2", "mx1"):
        (tmp_path / f"{selector}._domainkey.moj.gov.vn.txt").write_text(
            f"v=DKIM1; k=rsa; p=QUJD{selector.upper()}\n")
    (tmp_path / "mx1._domainkey.sub.moj.gov.vn.txt").write_text("v=DKIM1; k=rsa; p=QUJD\n")
    (tmp_path / "README").write_text("not a record\n")
    keys = REC.dkim_public_keys(str(tmp_path), DOMAIN)
    assert list(keys) == ["mx1", "mx2"]
    assert keys["mx1"] == "v=DKIM1; k=rsa; p=QUJDMX1"


def test_no_dkim_prints_no_dkim_records(tmp_path: Path) -> None:
    (tmp_path / "mail1._domainkey.moj.gov.vn.txt").write_text(dkim_value() + "\n")
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["dns", "-i", "lab", "--no-tlsa", "--no-dkim",
                     "--dkim-dir", str(tmp_path)]) == 0
    assert "_domainkey" not in out.getvalue() and "--no-dkim" in out.getvalue()


def test_a_long_dkim_key_is_split_into_character_strings_that_parse_back() -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 400
    sections = REC.mail_records(
        DOMAIN, [{"host": "m", "name": "m.moj.gov.vn", "addresses": ["192.0.2.1"],
                  "services": ["mx"]}],
        300, "reject", "postmaster@moj.gov.vn", "enforce", 604800, "postmaster@moj.gov.vn",
        dkim={"s2025": value},
    )
    dkim = [r for s in sections for r in s["records"] if "_domainkey" in r["owner"]]
    assert dkim and dkim[0]["owner"] == "s2025._domainkey.moj.gov.vn."
    chunks = re.findall(r'"([^"]*)"', dkim[0]["rdata"])
    assert all(len(c) <= 255 for c in chunks) and "".join(chunks) == value
    parse_zone(DOMAIN, _zone_with_apex(DOMAIN, REC.zone_fragment(sections) + "\n"))


# --- TLSA from the controller's certificates ----------------------------------------------


def test_tlsa_is_the_sha256_of_the_mx_certificate_key(tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path / "ca", "test CA")
    cert = pki.ensure_host_cert(ca, tmp_path / "hosts", "mail1", ["mail1.moj.gov.vn"])
    pub = publication("lab", pki_dir=tmp_path / "hosts")
    host_key = serialization.load_pem_private_key(cert.key_path.read_bytes(), None)
    expected = hashlib.sha256(host_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    assert records(pub, "TLSA", "_25._tcp.mail1.moj.gov.vn.") == [f"3 1 1 {expected}"]
    parse_zone(DOMAIN, _zone_with_apex(DOMAIN, hdns.zone_text(pub)))


def test_tlsa_comes_from_the_internal_ca_directory_of_the_settings(tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path / "ca", "test CA")
    pki.ensure_host_cert(ca, tmp_path / "ca" / "hosts", "mail1", ["mail1.moj.gov.vn"])
    source = hdns.TlsaSource()
    values = {"pki__mode": "internal", "pki__ca_dir": str(tmp_path / "ca")}
    assert source.certificate_file("mail1", values) == tmp_path / "ca" / "hosts" / "mail1.crt"
    assert hdns.TlsaSource(from_settings=False).certificate_file("mail1", values) is None


def test_without_certificates_no_tlsa_record_is_printed_and_the_output_says_why() -> None:
    pub = publication("lab")
    assert records(pub, "TLSA") == []
    assert "--pki-dir" in hdns.zone_text(pub)


# --- The lab's DNS serves the same records -------------------------------------------------


LAB_ZONES = {
    "lab_peer/etc/nsd/zones/ministry.zone.j2": DOMAIN,
    "lab_peer/etc/nsd/zones/peer.zone.j2": "peer.test",
    "lab_peer/etc/nsd/zones/reverse.zone.j2": "0.18.198.in-addr.arpa",
}


@pytest.fixture(scope="module")
def peer1() -> dict:
    return load_host("lab", "peer1").values


def _record_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if line and not line.startswith((";", "$", "@"))]


def test_the_lab_zone_holds_exactly_the_records_hopthu_dns_prints(peer1: dict) -> None:
    served = render("lab_peer/etc/nsd/zones/ministry.zone.j2", peer1)
    printed = hdns.zone_text(publication("lab"))
    assert len(_record_lines(printed)) >= 15, "hopthu dns printed too few records"
    assert _record_lines(served) == _record_lines(printed), (
        "the lab's zone and `hopthu dns --inventory lab` disagree: both must come from "
        "filter_plugins/hopthu_dns.py with the same settings"
    )


def test_the_lab_reverse_zone_holds_the_ptr_records_hopthu_dns_prints(peer1: dict) -> None:
    served = render("lab_peer/etc/nsd/zones/reverse.zone.j2", peer1)
    for r in publication("lab").reverse:
        assert re.search(rf"^{re.escape(r['owner'])}\s+{r['ttl']} IN PTR\s+{re.escape(r['rdata'])}$",
                         served, re.MULTILINE), f"the lab's reverse zone lacks {r}"
    assert "130.0.18.198.in-addr.arpa." in served and "peer1.peer.test." in served


@pytest.mark.parametrize("template", sorted(LAB_ZONES))
def test_every_lab_zone_parses(peer1: dict, template: str) -> None:
    parsed = parse_zone(LAB_ZONES[template], render(template, peer1))
    if parsed:
        origin = LAB_ZONES[template] + "."
        assert (origin, "SOA") in parsed and (origin, "NS") in parsed


def test_the_lab_peer_zone_routes_peer_mail_to_peer1(peer1: dict) -> None:
    parsed = parse_zone("peer.test", render("lab_peer/etc/nsd/zones/peer.zone.j2", peer1))
    if parsed:
        assert parsed[("peer.test.", "MX")] == {"10 peer1.peer.test."}
        assert parsed[("peer1.peer.test.", "A")] == {"198.18.0.130"}


# --- Bad input is refused with the setting named -------------------------------------------


def test_a_service_on_a_host_outside_its_group_is_refused() -> None:
    mail1 = load_host("lab", "mail1")
    values = dict(mail1.values)
    values["dns__hosts"] = [{**values["dns__hosts"][0], "host": "backup1"}]
    problems = hdns.inventory_problems({"mail1": dataclasses.replace(mail1, values=values)})
    assert any("backup1 is not in the group mail_mx" in p for p in problems), problems


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "mail1.example.org"}, "not inside the mail domain"),
    ({"services": ["smtp"]}, "unknown service 'smtp'"),
    ({"addresses": ["999.1.1.1"]}, "not an IPv4 or IPv6 address"),
    ({"services": ["imap"]}, "no host has the service 'mx'"),
])
def test_bad_published_hosts_are_refused_naming_the_setting(change: dict, message: str) -> None:
    host = {"host": "mail1", "name": "mail1.moj.gov.vn", "addresses": ["192.0.2.1"],
            "services": ["mx"], **change}
    with pytest.raises(REC.DnsRecordError, match=re.escape(message)) as caught:
        REC.mail_records(DOMAIN, [host], 300, "reject", "postmaster@moj.gov.vn", "enforce",
                         604800, "postmaster@moj.gov.vn")
    assert "dns__hosts" in str(caught.value)


@pytest.mark.parametrize(("network", "zone"), [
    ("198.18.0.0/24", "0.18.198.in-addr.arpa"),
    ("10.0.0.0/8", "10.in-addr.arpa"),
    ("2001:db8::/32", "8.b.d.0.1.0.0.2.ip6.arpa"),
])
def test_reverse_zone_names_follow_the_network(network: str, zone: str) -> None:
    assert REC.reverse_zone(network) == zone


def test_a_network_off_the_octet_boundary_has_no_reverse_zone_name() -> None:
    with pytest.raises(REC.DnsRecordError, match="octet boundary"):
        REC.reverse_zone("198.18.0.0/25")
