"""Benchmark: the accounts registry at the ministry's scale (issue 5).

    python benchmarks/accounts.py [--accounts 20000] [--host mail1]

A generated registry of N entries (about 90 % personal mailboxes, 8 % unit
mailboxes with an owner and two delegates, 2 % aliases; Vietnamese names and
units) is timed through each step an operator runs:

- check: load and validate accounts.yml (hopthu.accounts.registry.load);
- render: userdb.conf, the configuration both engines write (hopthu.render);
- plan / apply / no-op apply: the real hopthu-userdb, rendered from the
  template, on a scratch database on this machine (local), with the real
  `openssl passwd -6` hashing every initial password and the real SQLite;
  with --host, the same three through `hopthu accounts` against a lab host
  (SSH, upload of the configuration, the host's own tool);
- directory: `hopthu directory build` (HTML, CSV, vCard, LDIF).

Each figure is wall-clock seconds of one run, plus the peak RSS of this
process (the controller's memory for check, render and directory). Results
are printed and saved to benchmarks/results/accounts-<UTC>.json. Nothing is
asserted: tests assert behaviour, this script measures.
"""

from __future__ import annotations

import argparse
import datetime
import grp
import importlib.util
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
          "Đỗ", "Hồ", "Ngô", "Dương", "Lý"]
MIDDLE = ["Văn", "Thị", "Minh", "Đức", "Thu", "Ngọc", "Quang", "Thanh", "Hữu", "Kim", "Xuân"]
GIVEN = ["An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hùng", "Hương", "Khánh",
         "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phong", "Phương", "Quân", "Sơn", "Tâm",
         "Thảo", "Thắng", "Trang", "Tú", "Tuấn", "Vân", "Việt", "Yến", "Đạt", "Ánh"]
UNITS = ["Văn phòng Bộ", "Vụ Pháp chế", "Vụ Tổ chức cán bộ", "Thanh tra Bộ",
         "Cục Công nghệ thông tin", "Cục Thi hành án dân sự", "Cục Bổ trợ tư pháp",
         "Vụ Hợp tác quốc tế", "Cục Hộ tịch, quốc tịch, chứng thực", "Tổng cục Thi hành án"]


def registry(count: int, seed: int = 290) -> list[dict[str, Any]]:
    from hopthu.accounts.naming import suggest_account

    rng = random.Random(seed)
    taken: set[str] = set()
    people: list[dict[str, Any]] = []
    units = max(1, count * 8 // 100)
    aliases = max(1, count * 2 // 100)
    for n in range(count - units - aliases):
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        local = suggest_account(name, taken)
        taken.add(local)
        people.append({"address": f"{local}@moj.gov.vn", "kind": "personal",
                       "staff_id": f"BTP-{n:06d}", "unit": rng.choice(UNITS),
                       "display_name": name, "quota": "2 GiB"})
    entries = list(people)
    for n in range(units):
        owner, *delegates = rng.sample(people, 3)
        entries.append({"address": f"donvi{n:05d}@moj.gov.vn", "kind": "unit",
                        "unit": owner["unit"], "display_name": f"Hộp thư {owner['unit']} {n}",
                        "owner": owner["address"],
                        "delegates": [d["address"] for d in delegates], "quota": "10 GiB"})
    for n in range(aliases):
        target = rng.choice(people)
        entries.append({"address": f"lienhe{n:05d}@moj.gov.vn", "kind": "alias",
                        "unit": target["unit"], "display_name": f"Liên hệ {n}",
                        "targets": [target["address"]]})
    return entries


def timed(label: str, figures: dict[str, Any], func: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    result = func(*args, **kwargs)
    figures[label] = round(time.perf_counter() - start, 3)
    print(f"  {label:<22} {figures[label]:9.3f} s", flush=True)
    return result


def local_tool(scratch: Path, settings: dict[str, Any]) -> Any:
    from hopthu.render import render

    (scratch / "schema.sql").write_text(render("etc/hopthu/userdb/schema.sql.j2", settings))
    (scratch / "tool.py").write_text(render("usr/local/sbin/hopthu-userdb.j2", settings))
    spec = importlib.util.spec_from_file_location("hopthu_userdb_bench", scratch / "tool.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.SCHEMA = str(scratch / "schema.sql")
    tool.os.chown = lambda *args: None
    return tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20000)
    parser.add_argument("--host", help="also time plan/apply through `hopthu accounts` on "
                                       "this lab host (the lab must be up and deployed)")
    args = parser.parse_args()

    from hopthu.accounts.directory import build
    from hopthu.accounts.registry import load
    from hopthu.render import render

    figures: dict[str, Any] = {}
    scratch = Path(tempfile.mkdtemp(prefix="hopthu-bench-accounts-"))
    try:
        print(f"accounts benchmark: {args.accounts} registry entries", flush=True)
        entries = timed("generate", figures, registry, args.accounts)
        inventory = scratch / "inventory"
        inventory.mkdir()
        (inventory / "accounts.yml").write_text(
            yaml.safe_dump({"accounts": entries}, allow_unicode=True, sort_keys=False),
            encoding="utf-8")
        figures["registry_bytes"] = (inventory / "accounts.yml").stat().st_size
        loaded = timed("check", figures, load, inventory, domains={"moj.gov.vn"})
        settings = {
            "hopthu__mail_domain": "moj.gov.vn",
            "userdb__reader_group": grp.getgrgid(os.getgid()).gr_name,
            "userdb__passwords_enabled": True, "userdb__password_scheme": "ARGON2ID",
            "userdb__domains": ["moj.gov.vn"],
            "userdb__registry_file": str(inventory / "accounts.yml"),
            "userdb__seed_accounts": [], "userdb__seed_aliases": [],
        }
        conf = timed("render", figures, render, "etc/hopthu/userdb/userdb.conf.j2", settings)
        figures["config_bytes"] = len(conf.encode())
        db = scratch / "db"
        db.mkdir()
        (scratch / "userdb.conf").write_text(
            conf.replace('"/var/lib/hopthu/userdb"', json.dumps(str(db)))
                .replace('"/var/log/hopthu/accounts.log"', json.dumps(str(scratch / "audit.log")))
                .replace('"/var/vmail/%d/%n"', json.dumps(str(scratch / "vmail/%d/%n"))))
        tool = local_tool(scratch, settings)
        argv = ["hopthu-userdb", "apply", str(scratch / "userdb.conf"), "--commit", "bench",
                "--operator", "bench"]
        for label, extra in (("local_apply_first", []), ("local_plan_noop", ["--check"]),
                             ("local_apply_noop", [])):
            sink = io.StringIO()
            start = time.perf_counter()
            with redirect_stdout(sink):
                status = tool.main(argv + extra)
            figures[label] = round(time.perf_counter() - start, 3)
            print(f"  {label:<22} {figures[label]:9.3f} s", flush=True)
            if status != 0:
                raise SystemExit(f"{label}: hopthu-userdb exited {status}")
            figures[f"{label}_last_line"] = sink.getvalue().strip().splitlines()[-1]
        issued = sorted((db / "initial-passwords").glob("*.txt"))
        figures["initial_passwords_issued"] = sum(
            1 for line in issued[0].read_text().splitlines() if not line.startswith("#"))
        figures["database_bytes"] = (db / "users.sqlite").stat().st_size
        timed("directory", figures, build, loaded, scratch / "directory",
              generated="benchmark")
        figures["directory_html_bytes"] = (scratch / "directory" / "index.html").stat().st_size
        if args.host:
            host_figures(args.host, entries, figures)
        figures["controller_peak_rss_mib"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    now = datetime.datetime.now(datetime.UTC)
    record = {"benchmark": "accounts", "time": now.isoformat(timespec="seconds"),
              "accounts": args.accounts, "figures": figures,
              "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True, check=False).stdout.strip()}
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"accounts-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    print(f"saved {out.relative_to(ROOT)}")
    return 0


def host_figures(host: str, entries: list[dict[str, Any]], figures: dict[str, Any]) -> None:
    """plan, apply and a no-op apply through `hopthu accounts` on a lab host,
    with a scratch copy of the lab inventory; the lab's own registry is put
    back at the end (the generated accounts are then archived, not deleted)."""
    inventory = Path(tempfile.mkdtemp(prefix="hopthu-bench-inv-")) / "lab-bench"
    shutil.copytree(ROOT / "inventories" / "lab", inventory)
    lab = yaml.safe_load((inventory / "accounts.yml").read_text("utf-8"))["accounts"]
    (inventory / "accounts.yml").write_text(
        yaml.safe_dump({"accounts": lab + entries}, allow_unicode=True, sort_keys=False),
        encoding="utf-8")

    def run(*argv: str) -> None:
        result = subprocess.run([sys.executable, "-m", "hopthu", *argv], cwd=ROOT,
                                capture_output=True, text=True, timeout=7200, check=False)
        if result.returncode != 0:
            raise SystemExit(f"hopthu {' '.join(argv)}: {result.stderr[-2000:]}")

    try:
        for label, action, inv in (("host_plan", "plan", inventory),
                                   ("host_apply_first", "apply", inventory),
                                   ("host_apply_noop", "apply", inventory)):
            timed(label, figures, run, "accounts", action, "--inventory", str(inv),
                  "--limit", host)
    finally:
        run("accounts", "apply", "--inventory", "lab", "--limit", host)
        shutil.rmtree(ROOT / "secrets" / inventory.name, ignore_errors=True)
        shutil.rmtree(inventory.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
