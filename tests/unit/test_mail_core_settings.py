"""The mail core's settings: mistakes stop the run, naming the file and the key.

Each case makes one mistake in a small project tree (conftest.py's
`project`, plus the mail roles' defaults and a site.yml with the mail core's
plays) and checks that the report names the settings file to fix and the
key. Operator-supplied certificates (pki__mode: provided) are checked with
hopthu.pki before any host is touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from layouts import SPLIT_HOSTS

from hopthu import ROOT, pki
from hopthu.settings import SettingsError, load_inventory

ENV = "inventories/t/group_vars/all.yml"
MAIL_ROLES = ("pki", "userdb", "postfix", "dovecot")

SITE = """
- hosts: all
  roles: [common]
- hosts: mail_mx:mail_store
  roles: [pki, userdb]
- hosts: mail_mx
  roles: [postfix]
- hosts: mail_store
  roles: [dovecot]
"""



@pytest.fixture
def mail_project(project: Any) -> Any:
    for role in MAIL_ROLES:
        target = project.root / "roles" / role / "defaults"
        target.mkdir(parents=True)
        shutil.copy(ROOT / "roles" / role / "defaults" / "main.yml", target / "main.yml")
    project.write("site.yml", SITE)
    return project


def issues(project: Any) -> list[Any]:
    with pytest.raises(SettingsError) as caught:
        load_inventory(project.inventory, root=project.root)
    return caught.value.errors


def issue_for(project: Any, key: str) -> Any:
    found = [i for i in issues(project) if i.key.split(".")[0].split("[")[0] == key]
    assert found, f"no problem reported for {key}"
    return found[0]


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, Path]:
    """A CA, two host certificates from it, and a second CA."""
    ca = pki.create_ca(tmp_path / "ca", "test CA")
    one = pki.ensure_host_cert(ca, tmp_path / "hosts", "one", ["mx1.moj.gov.vn"])
    two = pki.ensure_host_cert(ca, tmp_path / "hosts", "two", ["mx1.moj.gov.vn"])
    other = pki.create_ca(tmp_path / "other", "another CA")
    return {"cert": one.fullchain_path, "key": one.key_path, "ca": ca.cert_path,
            "other_key": two.key_path, "other_ca": other.cert_path}


def provided(files: dict[str, Path], **override: Path | str) -> str:
    values = {"cert": files["cert"], "key": files["key"], "ca": files["ca"], **override}
    return (f'pki__mode: "provided"\npki__cert_file: "{values["cert"]}"\n'
            f'pki__key_file: "{values["key"]}"\npki__ca_file: "{values["ca"]}"\n')


def test_the_mail_roles_load_for_a_host_in_both_groups(mail_project: Any) -> None:
    hosts = load_inventory(mail_project.inventory, root=mail_project.root)
    values = hosts["mx1"].values
    assert {"pki", "userdb", "postfix", "dovecot"} <= set(hosts["mx1"].roles)
    assert values["pki__cert_names"] == ["mx1.moj.gov.vn"]
    assert values["postfix__myhostname"] == "mx1.moj.gov.vn"


def test_provided_certificate_files_that_match_are_accepted(mail_project: Any,
                                                              certificates: Any) -> None:
    mail_project.write(ENV, provided(certificates))
    load_inventory(mail_project.inventory, root=mail_project.root)


def test_a_provided_key_that_is_not_the_certificates_is_refused(mail_project: Any,
                                                                 certificates: Any) -> None:
    mail_project.write(ENV, provided(certificates, key=certificates["other_key"]))
    issue = issue_for(mail_project, "pki__key_file")
    assert issue.file == ENV
    assert "is not the private key of" in issue.message


def test_a_provided_certificate_from_another_ca_is_refused(mail_project: Any,
                                                            certificates: Any) -> None:
    mail_project.write(ENV, provided(certificates, ca=certificates["other_ca"]))
    issue = issue_for(mail_project, "pki__ca_file")
    assert issue.file == ENV and "was not issued by the CA" in issue.message


def test_a_provided_path_that_does_not_exist_is_refused(mail_project: Any, certificates: Any,
                                                        tmp_path: Path) -> None:
    mail_project.write(ENV, provided(certificates, cert=tmp_path / "missing.pem"))
    issue = issue_for(mail_project, "pki__cert_file")
    assert issue.file == ENV and "is not a file on the controller" in issue.message


def test_a_provided_certificate_must_cover_the_hosts_names(mail_project: Any,
                                                           certificates: Any) -> None:
    mail_project.write(ENV, provided(certificates) + 'pki__cert_names: ["mail.moj.gov.vn"]\n')
    issue = issue_for(mail_project, "pki__cert_file")
    assert "does not cover mail.moj.gov.vn" in issue.message


def test_certificate_files_are_refused_with_the_internal_ca(mail_project: Any,
                                                            certificates: Any) -> None:
    mail_project.write(ENV, f'pki__cert_file: "{certificates["cert"]}"\n')
    issue = issue_for(mail_project, "pki__cert_file")
    assert "pki__mode is internal" in issue.message


def test_the_crl_url_defaults_to_plain_http_in_the_mail_domain(mail_project: Any) -> None:
    hosts = load_inventory(mail_project.inventory, root=mail_project.root)
    assert hosts["mx1"].values["pki__crl_url"] == "http://pki.moj.gov.vn/hopthu-ca.crl"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://pki.moj.gov.vn/hopthu-ca.crl", "a CRL must be fetchable without TLS"),
        ("pki.moj.gov.vn/hopthu-ca.crl", "has no scheme"),
        ("not a url", "contains spaces"),
        ("ldap://pki.moj.gov.vn/hopthu-ca.crl", "has the scheme 'ldap'"),
        ("http://pki.moj.gov.vn/", "names no file"),
        ("http:///hopthu-ca.crl", "has no host"),
        ("http://pki.bộtưpháp.vn/hopthu-ca.crl", "is not ASCII"),
    ],
    ids=["https", "no-scheme", "not-a-url", "ldap", "no-file", "no-host", "idn"],
)
def test_a_crl_url_that_is_not_plain_http_is_refused(
    mail_project: Any, value: str, message: str
) -> None:
    mail_project.write(ENV, f'pki__crl_url: "{value}"\n')
    with pytest.raises(SettingsError) as caught:
        load_inventory(mail_project.inventory, root=mail_project.root)
    (issue,) = [i for i in caught.value.errors if i.key == "pki__crl_url"]
    assert issue.file == ENV
    assert message in issue.message
    assert "a plain http:// URL" in issue.allowed
    assert f"{ENV}:1: pki__crl_url = '{value}'" in str(caught.value)


def test_a_mailbox_size_limit_below_the_message_size_is_refused(mail_project: Any) -> None:
    mail_project.write(ENV, "postfix__mailbox_size_limit: 1000\n")
    issue = issue_for(mail_project, "postfix__mailbox_size_limit")
    assert issue.file == ENV and "smaller than postfix__message_size_limit" in issue.message


def test_an_mx_host_without_dovecot_must_reach_the_store_over_the_network(
    mail_project: Any,
) -> None:
    mail_project.write("inventories/t/hosts.yml", SPLIT_HOSTS)
    mail_project.write(ENV, "dovecot__postfix_local: false\ndovecot__lmtp_port: 24\n"
                            "userdb__passwords_enabled: false\n")
    issue = issue_for(mail_project, "postfix__dovecot_lmtp")
    assert "does not run on this host" in issue.message
    assert "inet:STORE_HOST:PORT" in issue.allowed


def test_a_store_without_postfix_needs_an_lmtp_port(mail_project: Any) -> None:
    mail_project.write(ENV, "dovecot__postfix_local: false\n")
    issue = issue_for(mail_project, "dovecot__lmtp_port")
    assert "no Postfix could deliver here" in issue.message


def test_a_seed_account_outside_the_mail_domains_is_refused(mail_project: Any) -> None:
    mail_project.write(ENV, """
        userdb__seed_accounts:
          - address: "an@example.org"
            password: "long-enough-password"
            display_name: "Nguyễn Văn An"
            kind: personal
            quota: 1000
            must_change: false
            delegates: []
    """)
    issue = issue_for(mail_project, "userdb__seed_accounts")
    assert "address" in issue.key and "userdb__domains" in issue.message


def test_a_utf8_seed_address_is_refused_because_smtputf8_is_off(mail_project: Any) -> None:
    mail_project.write(ENV, """
        userdb__seed_accounts:
          - address: "nguyễn@moj.gov.vn"
            password: "long-enough-password"
            display_name: "Nguyễn"
            kind: personal
            quota: 1000
            must_change: false
            delegates: []
    """)
    issue = issue_for(mail_project, "userdb__seed_accounts")
    assert "SMTPUTF8" in issue.message


def test_the_recipient_delimiters_must_agree(mail_project: Any) -> None:
    mail_project.write(ENV, 'dovecot__recipient_delimiter: "-"\n')
    issue = issue_for(mail_project, "dovecot__recipient_delimiter")
    assert "postfix__recipient_delimiter" in issue.message


def test_dovecot_must_accept_as_many_deliveries_per_mailbox_as_postfix_sends(
    mail_project: Any,
) -> None:
    mail_project.write(ENV, "dovecot__lmtp_user_concurrency_limit: 10\n")
    issue = issue_for(mail_project, "dovecot__lmtp_user_concurrency_limit")
    assert "451 4.3.0" in issue.message and "at least 20" in issue.allowed
