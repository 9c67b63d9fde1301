"""Every bench in bench/ runs, at a tiny size, as a user runs it: a bench that no longer runs fails `make test`.

Sizes are the smallest that still go through each bench's whole path (the figures mean nothing at
this size; `make bench` measures them). Those with a summary print each figure with its target.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each bench loads its own models in a process of its own; on a busy machine that takes minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

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
    "memory": ["--models", "4"],
    "concurrency": ["--questions", "1", "--max-tokens", "8"],
    "app": ["--rounds", "1"],
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
    "quality": ["--limit", "2", "--sets", "brackenridge", "--strategies", "PE,RAG"],
    "questions": ["brackenridge"],
    "pairs": ["--tiny"],
    "repeat_penalty": ["--penalties", "1.0", "1.1", "--limit", "2", "--presets", "PE"],
    "support": [],
    "sweep": ["--questions", "2", "--top-k", "1", "--chunkings", "800/120"],
    "parsing": ["--ocr", "1"],
}
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


@pytest.mark.parametrize("name", sorted(TINY))
def test_bench_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    if not (ROOT / "bench" / f"{name}.py").exists():
        pytest.skip(f"bench/{name}.py is not in this checkout")
    if name in NEEDS_DEBIAN_REFERENCE and not DEBIAN_REFERENCE.is_dir():
        pytest.skip("needs `apt-get install debian-reference-en debian-reference-zh-cn`")
    env = {**os.environ, "DATA_DIR": str(tmp_path), "OLLAMA_HOST": "off", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, f"bench/{name}.py", *TINY[name]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, f"bench/{name}.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    if name in WITH_SUMMARY:
        assert "\nsummary:\n" in done.stdout and FIGURE.search(done.stdout), done.stdout[-2000:]
