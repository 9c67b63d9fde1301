"""Every speed and memory bench at full size, one after another, then one table of each figure against its target.

Run: make bench   (or .venv/bin/python bench/all.py [--only generate,finetune])

Each bench runs as its own process (as a user would run it), its output shown as it comes; the
figures come from the `summary:` block each prints (`bench.common.summary`). Exit status 1 when a
bench fails or a figure misses its target.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ["generate", "ingest", "retrieval", "finetune", "evaluate", "memory", "concurrency", "app"]
OPTIONAL = ["real_docs", "servers"]  # run when present
LINE = re.compile(r"^\s+(\S+) (-?[\d.]+) \(target (<=|>=) ([\d.]+)\)")


def run(name: str) -> tuple[int, list[tuple[str, float, str, float]], float]:
    """Run bench/<name>.py, echoing its output; (exit status, its summary figures, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / f"{name}.py")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    figures, in_summary = [], False
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.strip() == "summary:":
            in_summary = True
        elif in_summary and (m := LINE.match(line)):
            figures.append((m[1], float(m[2]), m[3], float(m[4])))
    return process.wait(), figures, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated bench names")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else BENCHES + [n for n in OPTIONAL if (ROOT / f"bench/{n}.py").exists()]
    rows, failed = [], []
    for name in names:
        print(f"\n===== bench/{name}.py", flush=True)
        status, figures, seconds = run(name)
        if status != 0:
            failed.append(name)
        rows += [(name, *f) for f in figures]
        print(f"===== bench/{name}.py: exit {status}, {seconds:.0f} s", flush=True)
    print(f"\n{'bench':<12} {'figure':<34} {'value':>9}  target")
    missed = 0
    for bench, figure, value, op, target in rows:
        met = value <= target if op == "<=" else value >= target
        missed += not met
        print(f"{bench:<12} {figure:<34} {value:>9.3f}  {op} {target:g}{'' if met else '  MISSED'}")
    for name in failed:
        print(f"{name:<12} {'(the bench failed: see its output)':<34}")
    sys.exit(1 if failed or missed else 0)


if __name__ == "__main__":
    main()
