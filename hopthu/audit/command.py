"""`hopthu audit`: the auditor's report for an inventory (DESIGN.md §6, issue 7).

    hopthu audit --inventory production                       # runs the infra suite first
    hopthu audit --inventory lab --junit reports/lab/infra-junit.xml \\
        --junit reports/lab/lab-junit.xml --junit reports/lab/lab-bookworm-junit.xml
    hopthu audit --inventory lab --junit FILE --no-hosts --out /tmp/audit
    hopthu audit ... [--decree compliance/decree/DECREE.md] [--controls compliance/controls.yml]
    hopthu audit ... --screenshot                              # also report.png, from Chromium

With --junit (repeatable) it reads those runs; without, it runs the infra
suite the way `hopthu verify` does (read-only unless --allow-intrusive) and
reads the JUnit file that writes. It joins the runs with
compliance/controls.yml and DECREE.md, reads the hosts' OS, packages and
managed files over SSH (unless --no-hosts), and writes report.html and
report.md (default: reports/audit/).

With --screenshot it then opens report.html in Debian's headless Chromium
(hopthu/audit/browser.py), saves what it shows as report.png beside it, and
checks the page: not blank, every article of the decree with its heading
and a link from the contents, every link landing on something.

Exit status: 0 when every implemented control is proven by passing tests
on hosts and the map is complete; 1 when a test of an implemented control
failed or is missing, a control is not proven, or the completeness rule is
broken; 2 when an input is unusable (nothing is written then); 3 with
--screenshot when the reports were written but Chromium does not show the
report whole (or cannot run), whatever the audit's verdict, so that a
caller can tell a broken report from an audit that fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hopthu import ROOT
from hopthu import inventory as inventory_mod

if TYPE_CHECKING:
    from hopthu.audit.report import Written

PREFIX = "hopthu audit"
#: The exit status when --screenshot finds the written report broken in a browser.
BROKEN_REPORT = 3
#: Where `hopthu verify` writes its runs: <reports>/<inventory>/infra-junit.xml.
REPORTS = ROOT / "reports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory", "-i", default="lab",
        help="environment name (lab, staging, production) or a hosts.yml; default: lab",
    )
    parser.add_argument(
        "--junit", metavar="FILE", type=Path, action="append", default=[],
        help="a JUnit XML file of a test run (repeatable: the infra suite, the lab on each "
        "release, the unit suite); default: run the infra suite now",
    )
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help="where to write report.html and report.md; default: reports/audit/")
    parser.add_argument("--no-hosts", action="store_true",
                        help="do not connect to the hosts; the report says so")
    parser.add_argument("--allow-intrusive", action="store_true",
                        help="without --junit: also run the infra checks that change state")
    parser.add_argument("--decree", metavar="FILE", type=Path,
                        help="DECREE.md with the decree's control IDs; default: "
                        "compliance/decree/DECREE.md")
    parser.add_argument("--controls", metavar="FILE", type=Path,
                        help="the compliance map; default: compliance/controls.yml")
    parser.add_argument("--screenshot", action="store_true",
                        help="open report.html in headless Chromium (Debian's chromium), save "
                        "report.png beside it, and fail unless it shows the page with every "
                        "article's heading and working links")


def run_infra_suite(inventory: str, allow_intrusive: bool) -> Path | None:
    """Run the infra suite as `hopthu verify` does; the JUnit file, or None."""
    from hopthu import verify

    try:
        env_name = inventory_mod.load(inventory).name
    except inventory_mod.InventoryError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return None
    junit = (REPORTS / env_name / "infra-junit.xml").resolve()
    args = argparse.Namespace(
        inventory=inventory, allow_intrusive=allow_intrusive, junit=junit, keyword=None,
        host=[], lynis_min_index=None, verbose=0, pytest_args=[],
    )
    started = time.time()
    code = verify.run(args)
    # 0: all passed, 1: some failed; both leave a complete file to report on.
    fresh = junit.is_file() and junit.stat().st_mtime >= started - 1
    if code not in (0, 1) or not fresh:
        print(f"{PREFIX}: the infra suite did not run to the end (pytest exit status {code}"
              + ("" if fresh else f", {junit} not written") + "): see its output above. "
              "Nothing was written.", file=sys.stderr)
        return None
    return junit


def run(args: argparse.Namespace) -> int:
    from hopthu.audit import controls, decree, report

    junit_files = list(args.junit)
    if not junit_files:
        produced = run_infra_suite(args.inventory, args.allow_intrusive)
        if produced is None:
            return 2
        junit_files = [produced]
    try:
        audit = report.build(inventory=args.inventory, junit_files=junit_files,
                             ask_hosts=not args.no_hosts,
                             decree_path=args.decree or decree.DECREE_FILE,
                             controls_path=args.controls or controls.CONTROLS_FILE)
        written = report.write(audit, args.out or report.DEFAULT_OUT)
    except report.AuditError as exc:
        print(f"{PREFIX}: {exc}\n{PREFIX}: nothing was written.", file=sys.stderr)
        return 2
    for line in report.summary_lines(written.audit):
        print(f"{PREFIX}: {line}")
    print(f"{PREFIX}: wrote {written.html}")
    print(f"{PREFIX}: wrote {written.markdown}")
    if args.screenshot and not shown_in_browser(written):
        return BROKEN_REPORT
    return written.audit.exit_code


def shown_in_browser(written: Written) -> bool:
    """--screenshot: whether Chromium shows the whole report; if not, says what is wrong."""
    from hopthu.audit import browser

    try:
        png, problems = browser.check_report(written.html,
                                             [art.row for art in written.audit.articles])
    except (browser.BrowserError, ValueError) as exc:
        print(f"{PREFIX}: the report could not be opened in a browser: {exc}", file=sys.stderr)
        return False
    print(f"{PREFIX}: wrote {png} (the report as headless Chromium shows it)")
    for problem in problems:
        print(f"{PREFIX}: in the browser: {problem}", file=sys.stderr)
    return not problems
