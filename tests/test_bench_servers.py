"""bench/servers.py --tiny runs end to end, so the benchmark cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parent.parent / "bench" / "servers.py"


def test_the_servers_benchmark_runs_and_reports_every_figure() -> None:
    run = subprocess.run([sys.executable, str(BENCH), "--tiny"], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for label in ("embedded (Runtime.run)", "server, app path (Runtime.run)", "server, raw"):
        assert re.search(rf"{re.escape(label)} +first token p50 +[\d.]+ ms · decode +[\d.]+ tokens/s", out), out
    assert re.search(r"app / raw on the server: first token x[\d.]+, decode time x[\d.]+, total x[\d.]+", out), out
    assert re.search(r"2 columns on the server: one at a time [\d.]+ s, at once \(run_many\) [\d.]+ s", out), out
