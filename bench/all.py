"""Every speed and memory bench at full size, one after another, then one table of each figure against its target.

Run: make bench   (or .venv/bin/python bench/all.py [--only generate,finetune])

Each bench runs as its own process (as a user would run it), its output shown as it comes; the
figures come from the `summary:` block each prints (`bench.common.summary`). Exit status 1 when a
bench fails or a figure misses its target.

`--tiny --results FILE` is what `make test` runs (tests/test_benches.py): every bench at the smallest size
that still goes through its whole path, one after another in this one process (each with its command
line, a DATA_DIR of its own and its `__main__`, as `python bench/<name>.py` runs it), so the libraries
are imported and the models loaded once, not once a bench: 18 processes took 388 s of a 922 s test run.
Each bench's exit status, output and time go to FILE as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import runpy
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ["generate", "ingest", "retrieval", "finetune", "evaluate", "memory", "concurrency", "app"]
OPTIONAL = ["real_docs", "servers"]  # run when present
LINE = re.compile(r"^\s+(\S+) (-?[\d.]+) \(target (<=|>=) ([\d.]+)\)")
# The smallest command line that still takes each bench through its whole path (the figures mean nothing).
TINY: dict[str, list[str]] = {
    "generate": ["--tiny"],
    "finetune": ["--tiny"],
    "ingest": ["--copies", "1", "--rounds", "1"],
    "retrieval": [
        "--chunks",
        "200",
        "--queries",
        "2",
        "--repeats",
        "1",
        "--copies",
        "1",
        "--rounds",
        "1",
        "--skip",
        "quality",
        "train",
    ],  # fmt: skip
    "evaluate": ["--questions", "2", "--no-ft", "--block", "2"],
    "memory": ["--models", "2"],
    "concurrency": ["--questions", "1", "--max-tokens", "8"],
    "app": ["--rounds", "1", "--idle-s", "2"],
    "modes": [
        "--sets",
        "brackenridge",
        "--modes",
        "ft_then_rag",
        "--pairs",
        "4",
        "--limit",
        "2",
        "--epochs",
        "1",
        "--replay",
        "2",
        "--no-control",
    ],  # fmt: skip
    "quality": ["--limit", "2", "--sets", "brackenridge", "--strategies", "PE,RAG", "--bases"],
    "chinese_bases": ["--sets", "qingwu", "--limit", "1"],
    "questions": ["brackenridge"],
    "pairs": ["--tiny"],
    "repeat_penalty": ["--penalties", "1.0", "1.1", "--limit", "2", "--presets", "PE"],
    "support": ["--tiny"],
    "sweep": ["--questions", "2", "--top-k", "1", "--chunkings", "800/120"],
    "parsing": ["--ocr", "1"],
}


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


def run_here(name: str, argv: list[str]) -> dict[str, object]:
    """bench/<name>.py run as `__main__` in this process, with its own DATA_DIR; its status, output and time."""
    path = ROOT / "bench" / f"{name}.py"
    saved_argv, saved_env = sys.argv, dict(os.environ)
    out, status, started = io.StringIO(), 0, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"ragtune-tiny-{name}-") as data_dir:
        sys.argv = [str(path), *argv]
        os.environ.update(DATA_DIR=data_dir, OLLAMA_HOST="off", HF_HUB_OFFLINE="1")
        try:
            with contextlib.redirect_stdout(out):
                runpy.run_path(str(path), run_name="__main__")
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - a bench that crashes is reported, and the next one still runs
            status = 1
            out.write(traceback.format_exc())
        finally:
            sys.argv = saved_argv
            os.environ.clear()
            os.environ.update(saved_env)
    return {"status": status, "output": out.getvalue(), "seconds": time.perf_counter() - started}


def tiny(names: list[str], results: Path) -> None:
    """Every bench in `names` at its tiny size in this process; the results to `results` (JSON)."""
    done: dict[str, dict[str, object]] = {}
    for name in names:
        done[name] = run_here(name, TINY[name])
        print(f"bench/{name}.py --tiny: exit {done[name]['status']}, {done[name]['seconds']:.0f} s", flush=True)
        results.write_text(json.dumps(done, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated bench names")
    ap.add_argument("--tiny", action="store_true", help="every bench at a tiny size, in this process (make test)")
    ap.add_argument("--results", type=Path, help="with --tiny: where the results go (JSON)")
    args = ap.parse_args()
    if args.tiny:
        tiny(args.only.split(",") if args.only else list(TINY), args.results or Path("tiny-benches.json"))
        return
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
