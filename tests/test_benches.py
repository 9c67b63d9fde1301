"""Every bench in bench/ runs, at a tiny size: a bench that no longer runs fails `make test`.

Sizes are the smallest that still go through each bench's whole path (`bench.all.TINY`; the figures
mean nothing at this size, `make bench` measures them). `bench/all.py --tiny` runs them one after
another in one process of their own, each as its `__main__` with its command line; each bench's test
reads its exit status and output. Those with a summary print each figure with its target.
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
from filelock import FileLock

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


# Two halves of about equal time (75 s each alone, bench/all.py prints each bench's seconds), each run once by
# the xdist worker that holds its group (`make test` distributes by group), so both cores run benches at once.
HALVES = (
    set(_FIRST := ("finetune", "modes", "memory", "quality", "support", "repeat_penalty", "parsing")),
    set(TINY) - set(_FIRST),
)


def half_of(name: str) -> int:
    return next(i for i, half in enumerate(HALVES) if name in half)


def tiny_runs(half: int, shared: Path) -> dict[str, Any]:
    """`bench/all.py --tiny` once per test session for each half's benches this checkout can run; each one's result.

    `shared` is the folder every xdist worker sees: the first to ask for a half runs it under a file lock, and
    any other worker that gets one of its benches waits for that run and reads it, never running it again.
    """
    results = shared / f"tiny-benches-{half}.json"
    with FileLock(shared / f"tiny-benches-{half}.lock"):
        if not results.exists():
            names = ",".join(n for n in TINY if runnable(n) and half_of(n) == half)
            env = {**os.environ, "OLLAMA_HOST": "off", "HF_HUB_OFFLINE": "1"}
            done = subprocess.run(
                [sys.executable, "bench/all.py", "--tiny", "--only", names, "--results", str(results)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=1750,
            )
            assert results.exists(), (
                f"bench/all.py --tiny stopped before any bench:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
            (shared / f"tiny-benches-{half}.stderr").write_text(done.stderr)
    return {**json.loads(results.read_text()), "_stderr": (shared / f"tiny-benches-{half}.stderr").read_text()}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.xdist_group(f"tiny-benches-{half_of(n)}")) for n in sorted(TINY)]
)
def test_bench_runs_at_a_tiny_size(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if not (ROOT / "bench" / f"{name}.py").exists():
        pytest.skip(f"bench/{name}.py is not in this checkout")
    if not runnable(name):
        pytest.skip("needs `apt-get install debian-reference-en debian-reference-zh-cn`")
    base = tmp_path_factory.getbasetemp()  # under xdist, each worker's folder in this session's one
    runs = tiny_runs(half_of(name), base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)
    assert name in runs, f"bench/all.py --tiny did not reach bench/{name}.py:\n{runs['_stderr'][-3000:]}"
    run = runs[name]
    assert run["status"] == 0, f"bench/{name}.py failed:\n{run['output'][-4000:]}\n{runs['_stderr'][-2000:]}"
    if name in WITH_SUMMARY:
        assert "\nsummary:\n" in run["output"] and FIGURE.search(run["output"]), run["output"][-2000:]
