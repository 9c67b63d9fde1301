"""Every bench in bench/ runs, at a tiny size: a bench that no longer runs fails `make test`.

Sizes are the smallest that still go through each bench's whole path (`bench.all.TINY`; the figures
mean nothing at this size, `make bench` measures them). `bench/all.py --tiny` runs them one after
another in one process of their own, each as its `__main__` with its command line, in two halves (one test
each); a half's test reads every bench's exit status and output. Those with a summary print each figure with
its target.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.all import TINY

ROOT = Path(__file__).resolve().parent.parent
# Every bench at a tiny size, one after another: minutes, more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Benches with a tiny run of their own, which checks what they print: tests/test_real_docs_bench.py and
# tests/test_bench_servers.py.
TESTED_APART = {"real_docs", "servers"}
# Benches on real documents read the Debian Reference (Debian's packages; `.ci/run` installs them).
DEBIAN_REFERENCE = Path("/usr/share/debian-reference")
NEEDS_DEBIAN_REFERENCE = {"parsing"}
WITH_SUMMARY = {"generate", "finetune", "ingest", "evaluate", "memory", "concurrency", "app", "pairs"}
FIGURE = re.compile(r"^\s+\S+ -?[\d.]+ \(target (<=|>=) [\d.]+\)", re.MULTILINE)


def test_every_bench_has_a_tiny_run() -> None:
    benches = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"__init__", "common", "all"}
    assert benches <= set(TINY) | TESTED_APART, f"add a tiny run for {sorted(benches - set(TINY) - TESTED_APART)}"
    for name in TESTED_APART:
        assert f"bench/{name}.py" in "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py")), name


def runnable(name: str) -> bool:
    return (ROOT / "bench" / f"{name}.py").exists() and (
        name not in NEEDS_DEBIAN_REFERENCE or DEBIAN_REFERENCE.is_dir()
    )


# Two halves of about equal time (75 s each alone, bench/all.py prints each bench's seconds): two tests, which
# pytest-xdist hands to its two workers, so both cores run benches at once.
HALVES = (
    ("finetune", "modes", "memory", "quality", "support", "repeat_penalty", "parsing"),
    tuple(
        n for n in TINY if n not in {"finetune", "modes", "memory", "quality", "support", "repeat_penalty", "parsing"}
    ),
)


def problems(name: str, run: dict[str, Any] | None, stderr: str) -> list[str]:
    """What is wrong with bench/<name>.py's tiny run (nothing when it ran whole and printed its summary)."""
    if run is None:
        return [f"bench/all.py --tiny did not reach bench/{name}.py:\n{stderr[-3000:]}"]
    if run["status"] != 0:
        return [f"bench/{name}.py failed:\n{run['output'][-4000:]}\n{stderr[-2000:]}"]
    if name in WITH_SUMMARY and not ("\nsummary:\n" in run["output"] and FIGURE.search(run["output"])):
        return [f"bench/{name}.py printed no summary of figures with their targets:\n{run['output'][-2000:]}"]
    return []


@pytest.mark.parametrize("half", [0, 1])
def test_every_bench_runs_at_a_tiny_size(half: int, tmp_path: Path) -> None:
    """`bench/all.py --tiny` over one half's benches, in a process of its own; each bench's exit and summary."""
    names = [n for n in HALVES[half] if runnable(n)]
    skipped = [n for n in HALVES[half] if n not in names]
    assert not skipped or not os.environ.get("CI"), f"CI cannot run {skipped}: .ci/run installs what they read"
    results = tmp_path / "tiny.json"
    env = {**os.environ, "OLLAMA_HOST": "off", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "bench/all.py", "--tiny", "--only", ",".join(names), "--results", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1750,
    )
    assert results.exists(), (
        f"bench/all.py --tiny stopped before any bench:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    runs = json.loads(results.read_text())
    found = [p for name in names for p in problems(name, runs.get(name), done.stderr)]
    assert not found, "\n\n".join(found)
