"""The password portal on each mailbox store (roles/portal; Art. 11.3, 14).

Read-only: the services run as the role made them, nginx serves the portal
over TLS with the host's certificate and speaks Vietnamese, and the
application's one sudo rule is exactly the password change. The portal's
behaviour (CSRF, the policy, the rate limit, the change itself) is proven in
the lab by tests/lab/test_portal.py with a real browser.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

RULE = ("hopthu-portal ALL=(root) NOPASSWD: /usr/local/sbin/hopthu-userdb change-password "
        "/etc/hopthu/userdb/userdb.conf")

#: GET a page of the portal through nginx on the host itself, by the host's
#: mail name pinned to loopback (so neither DNS nor /etc/hosts matters):
#: the certificate is verified against the system trust store (the lab's or
#: the ministry's CA, roles/pki) for that name, as a user's browser does.
FETCH = """
import socket, ssl, sys, urllib.request
name, url = sys.argv[1], sys.argv[2]
lookup = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: lookup("127.0.0.1" if h == name else h, *a, **k)
r = urllib.request.urlopen(url, context=ssl.create_default_context(), timeout=10)
sys.stdout.write(str(r.status) + chr(10) + r.read().decode())
"""


@pytest.mark.control("ART14-FIRST-LOGIN")
def test_the_portal_and_nginx_run_as_the_role_made_them(store_host: Any) -> None:
    portal = store_host.service("hopthu-portal.service")
    assert portal.is_running and portal.is_enabled, \
        "hopthu-portal.service is not running and enabled: deploy the portal role"
    assert store_host.service("nginx.service").is_running
    users = {p.user for p in store_host.process.filter(comm="gunicorn")}
    assert users == {"hopthu-portal"}, f"gunicorn runs as {users}, not only hopthu-portal"
    assert not store_host.file("/etc/nginx/sites-enabled/default").exists, \
        "Debian's default site (port 80) is still enabled"


@pytest.mark.control("ART11-5-ACCESS")
def test_the_portal_may_run_exactly_one_command_as_root(store_host: Any) -> None:
    rule = store_host.file("/etc/sudoers.d/hopthu-portal")
    assert (rule.user, rule.group, rule.mode) == ("root", "root", 0o440)
    lines = [line for line in rule.content_string.splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == [RULE]
    key = store_host.file("/etc/hopthu/portal/secret.key")
    assert (key.user, key.group, key.mode) == ("root", "hopthu-portal", 0o640)


@pytest.mark.control("ART14-FIRST-LOGIN")
def test_the_portal_answers_over_tls_in_vietnamese(store_host: Any,
                                                   settings: dict[str, Any]) -> None:
    name = settings["portal__imap_host"]
    url = f"https://{name}:{settings['portal__https_port']}/"
    result = store_host.run(f"python3 -c {shlex.quote(FETCH)} {name} {url}")
    assert result.rc == 0, f"GET {url} failed: {result.stderr.strip()}"
    status, _, body = result.stdout.partition("\n")
    assert status == "200"
    assert "Đổi mật khẩu" in body, "the portal's page is not the Vietnamese password form"
