"""The password portal (Decree Art. 11.3, 14), offline: Flask's test client and a fake tool.

templates/usr/local/lib/hopthu/portal/hopthu_portal.py.j2 is turned into
the module the host runs (the managed header line and the raw-block lines
dropped; the first test proves that equals what the renderer writes) and
imported from a temporary directory. `hopthu-userdb change-password` is
replaced by a small script whose exit status follows the address's local
part and which records its argv and stdin, so the tests see exactly what
the host tool would get. Requests go to https://localhost, as behind nginx,
so the Secure session cookie travels as it does in a browser.

Needs Flask (Debian's python3-flask on the host); without it the module is skipped.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hopthu import ROOT
from hopthu.render import render

pytest.importorskip("flask")

TEMPLATE = "usr/local/lib/hopthu/portal/hopthu_portal.py.j2"

#: Distinctive passwords: any of them in a page or the log is a leak.
CURRENT = "Ban-dau-4821xq"
NEW = "Sông Hồng 2025 xanh!"
OTHER = "Khác-Hẳn-7319zz"
SECRETS = (CURRENT, NEW, OTHER)

SUPPORT_LINK = '<a href="mailto:support@moj.gov.vn">support@moj.gov.vn</a>'

FAKE_TOOL = '''#!{python}
"""Stand-in for `hopthu-userdb change-password`: the exit status follows the local part."""
import json
import pathlib
import sys
import time

raw = sys.stdin.read()
with open(pathlib.Path(__file__).with_name("calls.jsonl"), "a", encoding="utf-8") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "stdin": raw}}) + "\\n")
local = json.loads(raw)["address"].split("@")[0]
if local.startswith("ok"):
    sys.exit(0)
if local.startswith(("wrong", "nobody")):
    sys.exit(3)
if local.startswith("reused"):
    sys.stderr.write("hopthu-userdb: the new password was refused\\npolicy:reused\\n")
    sys.exit(4)
if local.startswith("odd"):
    sys.stderr.write("policy:dictionary_word\\n")
    sys.exit(4)
if local.startswith("archived"):
    sys.exit(5)
if local.startswith("slow"):
    time.sleep(10)
sys.stderr.write("Traceback (most recent call last): something broke\\n")
sys.exit(1)
'''


def portal_source() -> str:
    """The template as Python: without line 2 (the managed header) and the raw-block lines."""
    lines = (ROOT / "templates" / TEMPLATE).read_text(encoding="utf-8").split("\n")
    return "\n".join(
        line for number, line in enumerate(lines)
        if number != 1 and line not in ("{% raw %}", "{% endraw %}")
    )


def write_key(directory: Path) -> Path:
    key = directory / "secret.key"
    key.write_text(base64.b64encode(b"k" * 48).decode() + "\n", encoding="utf-8")
    return key


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The module, imported as gunicorn would, with $HOPTHU_PORTAL_CONFIG set for its `app`."""
    directory = tmp_path_factory.mktemp("portal-module")
    path = directory / "hopthu_portal.py"
    path.write_text(portal_source(), encoding="utf-8")
    conf = directory / "portal.conf"
    conf.write_text(f"[portal]\nsecret_key_file = {write_key(directory)}\n", encoding="utf-8")
    spec = importlib.util.spec_from_file_location("hopthu_portal_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOPTHU_PORTAL_CONFIG", str(conf))
        spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


class Portal:
    """One app from one configuration file, with the fake tool and what it received."""

    def __init__(self, module: ModuleType, directory: Path, settings: dict[str, Any],
                 clock: Callable[[], float] | None = None):
        tool = directory / "fake-userdb"
        tool.write_text(FAKE_TOOL.format(python=sys.executable), encoding="utf-8")
        tool.chmod(0o755)
        self.record = directory / "calls.jsonl"
        self.tool_config = str(directory / "userdb.conf")
        values: dict[str, Any] = {
            "secret_key_file": write_key(directory),
            "mail_domain": "moj.gov.vn",
            "support_address": "support@moj.gov.vn",
            "imap_host": "mail.moj.gov.vn",
            "use_sudo": "false",
            "tool": tool,
            "tool_config": self.tool_config,
            **settings,
        }
        conf = directory / "portal.conf"
        conf.write_text(
            "[portal]\n" + "".join(f"{k} = {v}\n" for k, v in values.items() if v is not None),
            encoding="utf-8",
        )
        self.app = module.create_app(str(conf), **({"clock": clock} if clock else {}))

    def client(self) -> Any:
        return self.app.test_client()

    def calls(self) -> list[dict[str, Any]]:
        """What the fake tool received, one entry per run."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text("utf-8").splitlines()]


@pytest.fixture
def make_portal(portal: ModuleType, tmp_path: Path) -> Callable[..., Portal]:
    def make(clock: Callable[[], float] | None = None, **settings: Any) -> Portal:
        return Portal(portal, tmp_path, settings, clock)

    return make


@pytest.fixture
def app(make_portal: Callable[..., Portal]) -> Portal:
    return make_portal()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(response: Any) -> str:
    return response.get_data(as_text=True)


def form_token(client: Any, **kwargs: Any) -> str:
    page = body(client.get("/", **kwargs))
    match = re.search(r'<input type="hidden" name="csrf_token" value="([A-Za-z0-9_-]{43})">', page)
    assert match, page
    return match.group(1)


def submit(client: Any, address: str, current: str = CURRENT, new: str = NEW,
           repeat: str | None = None, token: str | None = None, **kwargs: Any) -> Any:
    """One POST of the form, with this session's token unless `token` is given."""
    data = {
        "csrf_token": form_token(client) if token is None else token,
        "address": address,
        "current": current,
        "new": new,
        "repeat": new if repeat is None else repeat,
    }
    return client.post("/", data=data, **kwargs)


def errors(response: Any) -> list[str]:
    """The items of the page's error summary, or [] when there is none."""
    match = re.search(r'<div class="errors" role="alert">\n<p>[^<]*</p>\n<ul>\n(.*?)</ul>',
                      body(response), re.DOTALL)
    return re.findall(r"<li>(.*?)</li>", match.group(1)) if match else []


def alert(response: Any) -> str:
    """The one message of a message page (no form)."""
    match = re.search(r'<div class="errors" role="alert"><p>(.*?)</p></div>', body(response))
    assert match, body(response)
    return match.group(1)


# --- The file ----------------------------------------------------------------------------


def test_the_rendered_file_is_the_module_under_its_managed_header() -> None:
    rendered = render(TEMPLATE, {})
    lines = rendered.split("\n")
    assert lines[0] == "#!/usr/bin/python3"
    assert lines[1] == (
        "# Managed by hopthu (role: portal, template: templates/usr/local/lib/hopthu/portal/"
        "hopthu_portal.py.j2)."
    )
    assert lines[3] == "# fingerprint: hopthu:portal"
    assert lines[4] == "", "the raw block's own line end"
    assert "\n".join([lines[0], *lines[5:]]) == portal_source()
    compile(rendered, TEMPLATE, "exec")


def test_the_check_option_reports_the_configuration(portal: ModuleType, app: Portal,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOPTHU_PORTAL_CONFIG", str(Path(app.tool_config).with_name("portal.conf")))
    assert portal.main(["hopthu_portal.py", "--check"]) == 0
    out = capsys.readouterr().out
    assert "12..128, 5 attempts per 300 s per IP and per address" in out
    monkeypatch.setenv("HOPTHU_PORTAL_CONFIG", "/nonexistent/portal.conf")
    assert portal.main(["hopthu_portal.py", "--check"]) == 1
    assert capsys.readouterr().err == (
        "hopthu-portal: /nonexistent/portal.conf: cannot read the configuration: "
        "No such file or directory\n"
    )


# --- Configuration ------------------------------------------------------------------------


def test_the_defaults_apply_when_only_the_secret_key_is_set(portal: ModuleType,
                                                            tmp_path: Path) -> None:
    conf = tmp_path / "portal.conf"
    conf.write_text(f"[portal]\nsecret_key_file = {write_key(tmp_path)}\n", encoding="utf-8")
    config = portal.load_config(str(conf))
    assert (config.min_length, config.max_length, config.attempts, config.window_seconds) == (
        12, 128, 5, 300)
    assert (config.tool, config.tool_config, config.use_sudo) == (
        "/usr/local/sbin/hopthu-userdb", "/etc/hopthu/userdb/userdb.conf", True)
    assert (config.mail_domain, config.support_address, config.imap_host) == ("", "", "")
    assert portal.tool_argv(config) == [
        "/usr/bin/sudo", "-n", "/usr/local/sbin/hopthu-userdb", "change-password",
        "/etc/hopthu/userdb/userdb.conf",
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("secret_key_file = {dir}/missing", "cannot read the secret key: No such file"),
        ("secret_key_file = {dir}/short", "the secret key has 5 bytes, at least 32"),
        ("secret_key_file = {key}\nmin_lenght = 14", "unknown key(s) in [portal]: min_lenght"),
        ("secret_key_file = {key}\nmin_length = 20\nmax_length = 16",
         "max_length 16 is less than min_length 20"),
        ("secret_key_file = {key}\nattempts = 0", "attempts = 0 must be at least 1"),
        ("secret_key_file = {key}\nuse_sudo = maybe", "use_sudo = 'maybe' is not true or false"),
        ("secret_key_file = {key}\ntool = hopthu-userdb", "tool = 'hopthu-userdb' must be an"),
        ("secret_key_file = {key}\nsupport_address = help", "support_address = 'help' is not"),
        ("mail_domain = moj.gov.vn", "secret_key_file is required"),
    ],
)
def test_a_bad_configuration_stops_the_portal_with_a_reason(
    portal: ModuleType, tmp_path: Path, lines: str, message: str
) -> None:
    (tmp_path / "short").write_text("12345\n", encoding="utf-8")
    conf = tmp_path / "portal.conf"
    text = lines.format(dir=tmp_path, key=write_key(tmp_path))
    conf.write_text(f"[portal]\n{text}\n", encoding="utf-8")
    with pytest.raises(portal.ConfigError, match=re.escape(message)):
        portal.load_config(str(conf))


def test_without_sudo_the_tool_is_run_directly(portal: ModuleType, app: Portal) -> None:
    config = app.app.config["HOPTHU_PORTAL"]
    assert portal.tool_argv(config) == [config.tool, "change-password", app.tool_config]


# --- The form and its languages -----------------------------------------------------------


def test_get_shows_the_vietnamese_form_with_a_csrf_token(app: Portal) -> None:
    response = app.client().get("/")
    page = body(response)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert '<html lang="vi">' in page
    assert "<h1>Đổi mật khẩu</h1>" in page
    for field, label, autocomplete, kind in (
        ("address", "Địa chỉ thư điện tử", "username", "text"),
        ("current", "Mật khẩu hiện tại (mật khẩu ban đầu)", "current-password", "password"),
        ("new", "Mật khẩu mới", "new-password", "password"),
        ("repeat", "Nhập lại mật khẩu mới", "new-password", "password"),
    ):
        assert f'<label for="{field}">{label}</label>' in page
        tag = re.search(rf'<input id="{field}" [^>]*>', page)
        assert tag, field
        assert f'name="{field}"' in tag.group(0)
        assert f'type="{kind}"' in tag.group(0)
        assert f'autocomplete="{autocomplete}"' in tag.group(0)
    assert re.search(r'name="csrf_token" value="[A-Za-z0-9_-]{43}"', page)
    assert '<a href="?lang=en" hreflang="en" lang="en">English</a>' in page
    assert "<li>Dài từ 12 đến 128 ký tự.</li>" in page
    assert "<li>Không chứa tên tài khoản (phần trước dấu @ của địa chỉ thư).</li>" in page
    assert "Ví dụ: nguyenvana@moj.gov.vn. Có thể chỉ nhập phần trước dấu @." in page
    assert f"Cần hỗ trợ? Liên hệ {SUPPORT_LINK}." in page
    assert "http" not in page.replace("mailto:", ""), "no external resource"


def test_lang_en_switches_the_page_and_the_session_remembers_it(app: Portal) -> None:
    client = app.client()
    page = body(client.get("/?lang=en"))
    assert '<html lang="en">' in page
    assert "<h1>Change your password</h1>" in page
    assert '<label for="current">Current password (initial password)</label>' in page
    assert "<li>From 12 to 128 characters long.</li>" in page
    assert '<a href="?lang=vi" hreflang="vi" lang="vi">Tiếng Việt</a>' in page
    assert '<html lang="en">' in body(client.get("/"))
    assert '<html lang="vi">' in body(client.get("/?lang=vi"))
    assert '<html lang="vi">' in body(client.get("/"))


@pytest.mark.parametrize(
    ("accept", "lang"),
    [("en-US,en;q=0.9", "en"), ("vi-VN,vi;q=0.9,en;q=0.8", "vi"), ("fr-FR,fr", "vi"), (None, "vi")],
)
def test_accept_language_chooses_when_nothing_was_chosen(
    app: Portal, accept: str | None, lang: str
) -> None:
    headers = {"Accept-Language": accept} if accept else {}
    assert f'<html lang="{lang}">' in body(app.client().get("/", headers=headers))


def test_a_chosen_language_wins_over_accept_language(app: Portal) -> None:
    client = app.client()
    client.get("/?lang=vi")
    assert '<html lang="vi">' in body(client.get("/", headers={"Accept-Language": "en"}))


def test_every_message_exists_in_both_languages(portal: ModuleType) -> None:
    vi, en = portal.MESSAGES["vi"], portal.MESSAGES["en"]
    assert set(vi) == set(en)
    for key in vi:
        assert vi[key].strip() and en[key].strip(), key
        assert vi[key] != en[key], f"{key} is not translated"
        assert re.findall(r"\{\w+\}", vi[key]) == re.findall(r"\{\w+\}", en[key]), key
    assert set(portal.POLICY_CODES) <= set(vi)
    assert portal.TOOL_POLICY_CODES <= set(vi)


# --- Security headers and the cookie -------------------------------------------------------


def test_security_headers_are_on_every_response(make_portal: Callable[..., Portal]) -> None:
    app = make_portal(attempts="4")
    client = app.client()
    first = client.get("/")
    style = re.search(r"<style>(.*?)</style>", body(first), re.DOTALL)
    assert style
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode("utf-8")).digest()).decode()
    csp = (
        f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    responses = {
        "form": first,
        "english": client.get("/?lang=en"),
        "healthz": client.get("/healthz"),
        "404": client.get("/nowhere"),
        "405": client.put("/"),
        "csrf": client.post("/", data={"address": "ok@moj.gov.vn"}),
        "policy": submit(client, "ok@moj.gov.vn", repeat=OTHER),
        "wrong": submit(client, "wrong@moj.gov.vn"),
        "error": submit(client, "crash@moj.gov.vn"),
        "success": submit(client, "ok@moj.gov.vn"),
        "429": submit(client, "ok@moj.gov.vn"),
    }
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {"form": 200, "english": 200, "healthz": 200, "404": 404, "405": 405,
                        "csrf": 400, "policy": 400, "wrong": 403, "error": 500, "success": 200,
                        "429": 429}
    for name, response in responses.items():
        headers = response.headers
        assert headers["Content-Security-Policy"] == csp, name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] == "same-origin", name
        assert headers["Cache-Control"] == "no-store", name
    assert "unsafe-inline" not in csp
    assert sorted(responses["405"].headers["Allow"].split(", ")) == ["GET", "HEAD", "OPTIONS",
                                                                     "POST"]


def test_the_session_cookie_is_secure_httponly_and_samesite_strict(app: Portal) -> None:
    cookies = app.client().get("/").headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    name, *attributes = [part.strip() for part in cookies[0].split(";")]
    assert name.startswith("__Host-hopthu-portal=")
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
    assert not any(a.lower().startswith("domain=") for a in attributes)


def test_an_oversized_post_is_refused_in_the_holders_language(app: Portal) -> None:
    response = app.client().post("/", data={"address": "x" * 20000})
    assert (response.status_code, alert(response)) == (413, "Dữ liệu gửi lên quá lớn.")
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_says_ok_without_a_session(app: Portal) -> None:
    response = app.client().get("/healthz")
    assert (response.status_code, body(response), response.mimetype) == (200, "ok\n", "text/plain")
    assert response.headers.getlist("Set-Cookie") == []


# --- CSRF and Origin ---------------------------------------------------------------------

CSRF_VI = (
    "Biểu mẫu đã hết hạn hoặc không hợp lệ (trang mở quá lâu, hoặc trình duyệt chặn cookie). "
    "Vui lòng tải lại trang đổi mật khẩu và nhập lại."
)
ORIGIN_VI = (
    "Yêu cầu không được gửi từ trang đổi mật khẩu này nên đã bị từ chối. Vui lòng mở trang đổi "
    "mật khẩu và nhập lại."
)


def test_a_post_without_the_sessions_token_is_refused(app: Portal) -> None:
    client, stranger = app.client(), app.client()
    token = form_token(client)
    stranger.get("/")
    data = {"address": "ok@moj.gov.vn", "current": CURRENT, "new": NEW, "repeat": NEW}
    cases = {
        "no token": client.post("/", data=data),
        "empty token": client.post("/", data={**data, "csrf_token": ""}),
        "wrong token": client.post("/", data={**data, "csrf_token": "A" * 43}),
        "another session's token": stranger.post("/", data={**data, "csrf_token": token}),
        "no session": app.client().post("/", data={**data, "csrf_token": token}),
    }
    for case, response in cases.items():
        assert response.status_code == 400, case
        assert alert(response) == CSRF_VI, case
    assert app.calls() == []
    assert submit(client, "ok@moj.gov.vn", token=token).status_code == 200


def test_an_empty_token_never_matches(portal: ModuleType, app: Portal) -> None:
    """compare_digest("", "") is True: an empty session token must not let an empty form in."""
    with app.app.test_request_context("/"):
        portal.session["csrf"] = ""
        assert portal._csrf_ok("") is False


def test_the_csrf_message_is_english_with_lang_en(app: Portal) -> None:
    client = app.client()
    client.get("/?lang=en")
    response = client.post("/", data={"address": "ok@moj.gov.vn"})
    assert (response.status_code, alert(response)) == (400, (
        "The form has expired or is not valid (the page was open too long, or the browser "
        "blocks cookies). Please reload the password page and type again."))


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://localhost.evil.example",
                                    "http://localhost:8080"])
def test_a_post_from_another_origin_is_refused(app: Portal, origin: str) -> None:
    response = submit(app.client(), "ok@moj.gov.vn", headers={"Origin": origin})
    assert (response.status_code, alert(response)) == (400, ORIGIN_VI)
    assert app.calls() == []


def test_a_post_from_its_own_origin_is_accepted(app: Portal) -> None:
    response = submit(app.client(), "ok@moj.gov.vn", headers={"Origin": "https://localhost"})
    assert response.status_code == 200
    assert len(app.calls()) == 1


# --- Policy ------------------------------------------------------------------------------

POLICY_CASES = [
    ("address_invalid", "not an address", CURRENT, NEW, NEW,
     "Địa chỉ thư điện tử không hợp lệ. Hãy nhập đầy đủ, ví dụ nguyenvana@moj.gov.vn."),
    ("current_missing", "ok@moj.gov.vn", "", NEW, NEW,
     "Hãy nhập mật khẩu hiện tại (mật khẩu ban đầu)."),
    ("mismatch", "ok@moj.gov.vn", CURRENT, NEW, OTHER,
     "Mật khẩu mới và mật khẩu nhập lại không giống nhau."),
    ("too_short", "ok@moj.gov.vn", CURRENT, "Ab1!xyzw", "Ab1!xyzw",
     "Mật khẩu mới quá ngắn: cần ít nhất 12 ký tự."),
    ("too_long", "ok@moj.gov.vn", CURRENT, "Ab1!" + "x" * 125, "Ab1!" + "x" * 125,
     "Mật khẩu mới quá dài: tối đa 128 ký tự."),
    ("invalid_character", "ok@moj.gov.vn", CURRENT, "Sông\nHồng 2025", "Sông\nHồng 2025",
     ("Mật khẩu mới chứa ký tự điều khiển (ví dụ ký tự xuống dòng hoặc tab), không dùng được "
      "trong chương trình thư.")),
    ("same_as_current", "ok@moj.gov.vn", CURRENT, CURRENT, CURRENT,
     "Mật khẩu mới phải khác mật khẩu hiện tại."),
    ("contains_local_part", "hoang@moj.gov.vn", CURRENT, "Nha-HOANG-2025", "Nha-HOANG-2025",
     "Mật khẩu mới không được chứa tên tài khoản (phần trước dấu @)."),
    ("too_few_classes", "ok@moj.gov.vn", CURRENT, "songhongxanhmai", "songhongxanhmai",
     ("Mật khẩu mới cần có ít nhất 3 trong 4 loại ký tự: chữ thường, chữ hoa, chữ số, ký tự "
      "khác.")),
]


@pytest.mark.parametrize(
    ("code", "address", "current", "new", "repeat", "message"),
    POLICY_CASES, ids=[case[0] for case in POLICY_CASES],
)
def test_each_policy_failure_has_its_own_message(
    portal: ModuleType, app: Portal, code: str, address: str, current: str, new: str,
    repeat: str, message: str,
) -> None:
    normalized = portal.normalize_address(address, "moj.gov.vn") or address
    assert portal.check_policy(normalized, current, new, repeat, 12, 128) == [code]
    response = submit(app.client(), address, current, new, repeat)
    assert response.status_code == 400
    assert errors(response) == [message]
    assert app.calls() == [], "a refused password never reaches the tool"


def test_the_policy_messages_are_english_with_lang_en(app: Portal) -> None:
    client = app.client()
    client.get("/?lang=en")
    response = submit(client, "ok@moj.gov.vn", new="Ab1!xyzw", repeat="Ab1!xyzX")
    assert errors(response) == [
        "The new password and its repetition are not the same.",
        "The new password is too short: it needs at least 12 characters.",
    ]


def test_check_policy_returns_every_failure_in_order(portal: ModuleType) -> None:
    assert portal.check_policy("binh@moj.gov.vn", "", "binh", "binh2", 12, 128) == [
        "current_missing", "mismatch", "too_short", "contains_local_part", "too_few_classes"]
    assert portal.check_policy("binh@moj.gov.vn", CURRENT, NEW, NEW, 12, 128) == []


def test_two_classes_are_not_enough(portal: ModuleType) -> None:
    assert portal.check_policy("ok@moj.gov.vn", CURRENT, "songhongXANHmai", "songhongXANHmai",
                               12, 128) == ["too_few_classes"]
    assert portal.check_policy("ok@moj.gov.vn", CURRENT, "songhongXANH5ai", "songhongXANH5ai",
                               12, 128) == []


def test_check_policy_counts_unicode_characters_not_bytes(portal: ModuleType) -> None:
    password = "Đổimậtkhẩu1!"
    assert (len(password), len(password.encode("utf-8"))) == (12, 19)
    assert portal.check_policy("ok@moj.gov.vn", CURRENT, password, password, 12, 12) == []
    assert portal.check_policy("ok@moj.gov.vn", CURRENT, password, password, 13, 20) == [
        "too_short"]


def test_an_invalid_address_has_no_local_part_to_check(portal: ModuleType) -> None:
    assert portal.check_policy("hoang", CURRENT, "Nha-HOANG-2025", "Nha-HOANG-2025", 12, 128) == [
        "address_invalid"]


def test_check_policy_compares_the_local_part_case_insensitively(portal: ModuleType) -> None:
    assert portal.check_policy("hoang@moj.gov.vn", CURRENT, "Nha-HoAnG-2025", "Nha-HoAnG-2025",
                               12, 128) == ["contains_local_part"]
    # A two-letter local part ("an") is not searched: it would forbid "Thanh", "Lan"...
    assert portal.check_policy("an@moj.gov.vn", CURRENT, "Thanh-Binh-2025", "Thanh-Binh-2025",
                               12, 128) == []


@pytest.mark.parametrize(
    ("password", "classes"),
    [("abcdefghijkl", 1), ("abcdefGHIJKL", 2), ("abcdefGHIJ12", 3), ("abcDEF123 !?", 4),
     ("mậtkhẩuĐỔI99", 3), ("密码密码密码密码A1", 3)],
)
def test_character_classes(portal: ModuleType, password: str, classes: int) -> None:
    assert portal.character_classes(password) == classes


@pytest.mark.parametrize(
    ("raw", "domain", "address"),
    [
        ("  OK@MOJ.GOV.VN ", "", "ok@moj.gov.vn"),
        ("Nguyen.Van.A", "moj.gov.vn", "nguyen.van.a@moj.gov.vn"),
        ("nguyenvana", "", None),
        ("", "moj.gov.vn", None),
        ("a@b", "", None),
        ("a@@moj.gov.vn", "", None),
        ("a b@moj.gov.vn", "", None),
        ("trần@moj.gov.vn", "", None),
        ("x" * 65 + "@moj.gov.vn", "", None),
    ],
)
def test_normalize_address(portal: ModuleType, raw: str, domain: str, address: str | None) -> None:
    assert portal.normalize_address(raw, domain) == address


# --- The change ---------------------------------------------------------------------------


def test_a_change_sends_the_tool_exactly_the_json_and_shows_success(app: Portal) -> None:
    client = app.client()
    token = form_token(client)
    response = submit(client, " OK@MOJ.GOV.VN ", token=token)
    assert response.status_code == 200
    page = body(response)
    assert "<h1>Đã đổi mật khẩu</h1>" in page
    assert ("Mật khẩu của ok@moj.gov.vn đã được đổi. Từ bây giờ bạn gửi và nhận thư được bằng "
            "mật khẩu mới.") in page
    assert "dùng máy chủ <strong>mail.moj.gov.vn</strong> và mật khẩu mới." in page
    assert f"Liên hệ {SUPPORT_LINK}." in page
    expected = {"address": "ok@moj.gov.vn", "current": CURRENT, "new": NEW}
    [call] = app.calls()
    assert call["argv"] == ["change-password", app.tool_config]
    assert call["stdin"] == json.dumps(expected) + "\n"
    assert call["stdin"].isascii()
    assert json.loads(call["stdin"]) == expected
    again = submit(client, "ok@moj.gov.vn", token=token)
    assert (again.status_code, alert(again)) == (400, CSRF_VI), "the token is renewed on success"


def test_the_local_part_alone_gets_the_mail_domain(app: Portal) -> None:
    assert submit(app.client(), "Ok").status_code == 200
    assert json.loads(app.calls()[0]["stdin"])["address"] == "ok@moj.gov.vn"


def test_the_success_page_in_english(app: Portal) -> None:
    client = app.client()
    client.get("/?lang=en")
    page = body(submit(client, "ok@moj.gov.vn"))
    assert "<h1>Password changed</h1>" in page
    assert ("The password of ok@moj.gov.vn has been changed. From now on, mail works with the "
            "new password.") in page
    assert "use the server <strong>mail.moj.gov.vn</strong> and the new password." in page


def test_a_wrong_password_and_an_unknown_account_look_the_same(app: Portal) -> None:
    client = app.client()
    wrong = submit(client, "wrong@moj.gov.vn")
    unknown = submit(client, "nobody@moj.gov.vn")
    assert wrong.status_code == unknown.status_code == 403
    assert errors(wrong) == ["Địa chỉ thư điện tử hoặc mật khẩu hiện tại không đúng."]
    assert body(wrong).replace("wrong@", "X@") == body(unknown).replace("nobody@", "X@")
    assert len(app.calls()) == 2


def test_an_archived_account_is_sent_to_support(app: Portal) -> None:
    response = submit(app.client(), "archived@moj.gov.vn")
    assert response.status_code == 403
    assert alert(response) == (
        "Tài khoản này hiện không hoạt động (đã bị khóa hoặc đã lưu trữ) nên không đổi được "
        f"mật khẩu. Vui lòng liên hệ {SUPPORT_LINK}."
    )
    assert "<form" not in body(response)


def test_without_a_support_address_the_page_names_the_support_desk(
    make_portal: Callable[..., Portal],
) -> None:
    client = make_portal(support_address=None).client()
    client.get("/?lang=en")
    assert alert(submit(client, "archived@moj.gov.vn")) == (
        "This account is not active (disabled or archived), so its password cannot be changed. "
        "Please contact the ministry mail support desk."
    )


def test_without_a_support_address_the_vietnamese_page_names_the_support_desk(
    make_portal: Callable[..., Portal],
) -> None:
    response = submit(make_portal(support_address=None).client(), "crash@moj.gov.vn")
    assert alert(response) == (
        "Hệ thống tạm thời không đổi được mật khẩu. Vui lòng thử lại sau ít phút; nếu vẫn không "
        "được, hãy liên hệ bộ phận hỗ trợ thư điện tử của Bộ."
    )
    assert "mailto:" not in body(response)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("reused@moj.gov.vn",
         "Mật khẩu mới đã từng được dùng cho tài khoản này. Hãy chọn mật khẩu khác."),
        ("odd@moj.gov.vn",
         "Mật khẩu mới không đáp ứng chính sách mật khẩu. Hãy chọn mật khẩu khác."),
    ],
)
def test_the_tools_policy_reason_is_shown(app: Portal, address: str, message: str) -> None:
    response = submit(app.client(), address)
    assert (response.status_code, errors(response)) == (400, [message])


TOOL_ERROR_VI = (
    "Hệ thống tạm thời không đổi được mật khẩu. Vui lòng thử lại sau ít phút; nếu vẫn không "
    f"được, hãy liên hệ {SUPPORT_LINK}."
)


def test_a_failing_tool_gives_try_again_later(app: Portal,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    response = submit(app.client(), "crash@moj.gov.vn")
    assert (response.status_code, alert(response)) == (500, TOOL_ERROR_VI)
    assert capsys.readouterr().err == (
        "hopthu-portal: address=crash@moj.gov.vn client=127.0.0.1 outcome=error:exit 1\n")


def test_a_tool_that_hangs_is_stopped(portal: ModuleType, app: Portal,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(portal, "TOOL_TIMEOUT_SECONDS", 0.5)
    response = submit(app.client(), "slow@moj.gov.vn")
    assert (response.status_code, alert(response)) == (500, TOOL_ERROR_VI)
    assert capsys.readouterr().err.endswith("outcome=error:timeout\n")


def test_a_missing_tool_gives_try_again_later(make_portal: Callable[..., Portal],
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    response = submit(make_portal(tool=tmp_path / "absent").client(), "ok@moj.gov.vn")
    assert (response.status_code, alert(response)) == (500, TOOL_ERROR_VI)
    assert capsys.readouterr().err.endswith(
        "outcome=error:cannot run the tool: No such file or directory\n")


# --- Rate limit --------------------------------------------------------------------------

RATE_VI = "Bạn đã thử quá nhiều lần. Để bảo vệ tài khoản, vui lòng đợi 5 phút rồi thử lại."


def test_one_client_ip_gets_attempts_posts_per_window(make_portal: Callable[..., Portal]) -> None:
    app = make_portal(attempts="3")
    client = app.client()
    statuses = [submit(client, f"wrong{n}@moj.gov.vn").status_code for n in range(3)]
    assert statuses == [403, 403, 403]
    limited = submit(client, "ok@moj.gov.vn")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "300"
    assert alert(limited) == RATE_VI
    assert len(app.calls()) == 3, "a limited attempt never reaches the tool"


def test_policy_failures_and_successes_count_too(make_portal: Callable[..., Portal]) -> None:
    app = make_portal(attempts="2")
    client = app.client()
    assert submit(client, "ok@moj.gov.vn", repeat=OTHER).status_code == 400
    assert submit(client, "ok@moj.gov.vn").status_code == 200
    assert submit(client, "ok2@moj.gov.vn").status_code == 429


def test_one_address_gets_attempts_posts_per_window_from_any_ip(
    make_portal: Callable[..., Portal],
) -> None:
    app = make_portal(attempts="3")
    client = app.client()
    for n in range(3):
        response = submit(client, "wrong@moj.gov.vn", headers={"X-Real-IP": f"203.0.113.{n}"})
        assert response.status_code == 403
    limited = submit(client, "WRONG@moj.gov.vn", headers={"X-Real-IP": "203.0.113.50"})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "300")
    other = submit(client, "wrong2@moj.gov.vn", headers={"X-Real-IP": "203.0.113.51"})
    assert other.status_code == 403, "another address from another IP is not limited"


def test_x_real_ip_is_believed_only_from_nginx_on_loopback(
    make_portal: Callable[..., Portal], capsys: pytest.CaptureFixture[str],
) -> None:
    app = make_portal(attempts="3")
    client = app.client()
    for n in range(4):
        response = submit(client, f"wrong{n}@moj.gov.vn", headers={"X-Real-IP": f"198.51.100.{n}"},
                          environ_overrides={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 429
    log = capsys.readouterr().err.splitlines()
    assert log[0] == (
        "hopthu-portal: address=wrong0@moj.gov.vn client=192.0.2.7 outcome=wrong_credentials")
    assert log[3] == (
        "hopthu-portal: address=wrong3@moj.gov.vn client=192.0.2.7 outcome=rate_limited")


@pytest.mark.parametrize(
    ("peer", "real_ip", "client"),
    [
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("::1", "2001:db8::5", "2001:db8::5"),
        ("", "203.0.113.9", "203.0.113.9"),  # a Unix socket: only local processes connect
        ("192.0.2.7", "203.0.113.9", "192.0.2.7"),
        ("127.0.0.1", "203.0.113.9, 10.0.0.1", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_the_client_ip_in_the_log(
    app: Portal, capsys: pytest.CaptureFixture[str], peer: str, real_ip: str | None, client: str,
) -> None:
    headers = {"X-Real-IP": real_ip} if real_ip else {}
    submit(app.client(), "wrong@moj.gov.vn", headers=headers,
           environ_overrides={"REMOTE_ADDR": peer})
    assert capsys.readouterr().err == (
        f"hopthu-portal: address=wrong@moj.gov.vn client={client} outcome=wrong_credentials\n")


def test_the_limit_lifts_when_the_window_has_passed(make_portal: Callable[..., Portal]) -> None:
    clock = Clock()
    app = make_portal(clock=clock, attempts="2", window_seconds="300")
    client = app.client()
    assert [submit(client, f"wrong{n}@moj.gov.vn").status_code for n in range(2)] == [403, 403]
    clock.now += 100
    limited = submit(client, "wrong9@moj.gov.vn")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "200")
    assert alert(limited) == (
        "Bạn đã thử quá nhiều lần. Để bảo vệ tài khoản, vui lòng đợi 4 phút rồi thử lại.")
    clock.now += 200
    assert submit(client, "wrong9@moj.gov.vn").status_code == 403


def test_the_rate_limit_message_in_english(make_portal: Callable[..., Portal]) -> None:
    client = make_portal(attempts="1").client()
    client.get("/?lang=en")
    submit(client, "wrong@moj.gov.vn")
    limited = submit(client, "wrong@moj.gov.vn")
    assert (limited.status_code, alert(limited)) == (
        429, "Too many attempts. To protect the accounts, please wait 5 min and try again.")


# --- Secrets -----------------------------------------------------------------------------


def test_no_password_reaches_a_page_or_the_log(
    make_portal: Callable[..., Portal], capsys: pytest.CaptureFixture[str],
) -> None:
    app = make_portal(attempts="7")
    client = app.client()
    responses = [
        submit(client, "ok@moj.gov.vn", repeat=OTHER),  # policy: mismatch
        submit(client, "wrong@moj.gov.vn"),
        submit(client, "reused@moj.gov.vn"),
        submit(client, "archived@moj.gov.vn"),
        submit(client, "crash@moj.gov.vn"),
        submit(client, "ok@moj.gov.vn", token="A" * 43),
        submit(client, "ok@moj.gov.vn", headers={"Origin": "https://evil.example"}),
        submit(client, "ok@moj.gov.vn"),
        submit(client, "ok@moj.gov.vn"),
        submit(client, "ok@moj.gov.vn"),  # the IP's eighth counted POST: 429
    ]
    assert [r.status_code for r in responses] == [400, 403, 400, 403, 500, 400, 400, 200, 200, 429]
    log = capsys.readouterr().err
    for secret in SECRETS:
        assert secret not in log
        for response in responses:
            assert secret not in body(response)
    for response in responses[:3]:
        for field in ("current", "new", "repeat"):
            tag = re.search(rf'<input id="{field}" [^>]*>', body(response))
            assert tag and "value=" not in tag.group(0), "a password field is never filled in"
    prefix = "hopthu-portal: address="
    assert log.splitlines() == [
        f"{prefix}ok@moj.gov.vn client=127.0.0.1 outcome=policy:mismatch",
        f"{prefix}wrong@moj.gov.vn client=127.0.0.1 outcome=wrong_credentials",
        f"{prefix}reused@moj.gov.vn client=127.0.0.1 outcome=policy:reused",
        f"{prefix}archived@moj.gov.vn client=127.0.0.1 outcome=not_active",
        f"{prefix}crash@moj.gov.vn client=127.0.0.1 outcome=error:exit 1",
        f"{prefix}ok@moj.gov.vn client=127.0.0.1 outcome=refused:csrf",
        f"{prefix}ok@moj.gov.vn client=127.0.0.1 outcome=refused:origin",
        f"{prefix}ok@moj.gov.vn client=127.0.0.1 outcome=changed",
        f"{prefix}ok@moj.gov.vn client=127.0.0.1 outcome=changed",
        f"{prefix}ok@moj.gov.vn client=127.0.0.1 outcome=rate_limited",
    ]


def test_an_address_that_is_no_address_is_not_logged(app: Portal,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    typed = "Maybe-A-Password 77"
    response = submit(app.client(), typed)
    assert response.status_code == 400
    assert capsys.readouterr().err == (
        "hopthu-portal: address=- client=127.0.0.1 outcome=policy:address_invalid\n")


def test_a_typed_address_is_escaped_when_shown_again(app: Portal) -> None:
    page = body(submit(app.client(), '<b>"x"</b>'))
    assert 'value="&lt;b&gt;&quot;x&quot;&lt;/b&gt;"' in page
    assert "<b>" not in page
