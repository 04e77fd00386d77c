"""Time a fresh converge and a no-op re-run with each engine, on one lab host.

    sudo .venv/bin/python benchmarks/deploy.py [--host mail2] [--suite trixie]

For each engine, the host is recreated from the cached image (so both engines
start from the same fresh Debian), then converged, then converged again. The
apt proxy's cache is warm after the first engine, so the second engine's
first converge does not pay for downloads: the script converges once with
Ansible before measuring, to warm the cache for both. Results are printed and
written to benchmarks/results/deploy-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import UTC, datetime

from hopthu import ROOT
from hopthu.engines import run_engine

RESULTS = ROOT / "benchmarks" / "results"


def timed_run(engine: str, host: str) -> dict:
    start = time.monotonic()
    result = run_engine(engine, "lab", limit=host, echo=False)
    elapsed = time.monotonic() - start
    if not result.ok:
        raise SystemExit(f"{engine} failed on {host}:\n{result.output[-3000:]}")
    return {"seconds": round(elapsed, 1), "changed": result.changed.get(host, 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="mail2")
    args = parser.parse_args()

    from hopthu import lab

    lab.up()
    print(f"warming the apt proxy cache with one Ansible converge of {args.host} ...", flush=True)
    lab.recreate(args.host)
    timed_run("ansible", args.host)

    figures: dict[str, dict] = {}
    for engine in ("ansible", "pyinfra"):
        lab.recreate(args.host)
        fresh = timed_run(engine, args.host)
        noop = timed_run(engine, args.host)
        figures[engine] = {"fresh_converge": fresh, "noop_rerun": noop}
        print(f"{engine:8} fresh converge {fresh['seconds']:7.1f} s ({fresh['changed']} changed)"
              f"   no-op re-run {noop['seconds']:6.1f} s ({noop['changed']} changed)", flush=True)

    commit = subprocess.run(check=False, args=["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    record = {
        "benchmark": "deploy",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "host": args.host,
        "controller": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "figures": figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"deploy-{record['when'].replace(':', '')}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
