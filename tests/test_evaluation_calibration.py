"""The headline "correct" check against 80 hand-labelled answers of the sample set (40 PE, 40 RAG).

Labels (tests/fixtures/calibration.jsonl, `correct`) were given by reading each answer against the
expected one: right when the answer states the asked fact, whatever its wording; a hedged list of
several values (q40: 3.8, 3.9, 2.0) is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from core.evaluation import metrics as m

FIXTURE = Path(__file__).parent / "fixtures" / "calibration.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
CHECKS: dict[str, Callable[[str, str], bool]] = {
    "headline (contains, or recall >= 0.6 with every number)": m.is_correct,
    "contains": m.contains,
    "exact match": m.exact_match,
    "token F1 >= 0.5": lambda a, e: m.token_f1(a, e) >= 0.5,
    "token F1 >= 0.3": lambda a, e: m.token_f1(a, e) >= 0.3,
}


def agreement(check: Callable[[str, str], bool]) -> float:
    return sum(check(r["answer"], r["expected"]) == r["correct"] for r in ROWS) / len(ROWS)


def test_the_headline_check_agrees_best_with_the_hand_labels() -> None:
    scores = {name: agreement(check) for name, check in CHECKS.items()}
    for name, score in scores.items():
        print(f"{score:6.1%}  {name}")
    headline = scores.pop(next(iter(CHECKS)))
    assert len(ROWS) == 80 and sum(r["correct"] for r in ROWS) == 15
    assert headline >= 0.95
    assert all(headline > other for other in scores.values())


def test_the_headline_check_misses_are_the_known_ones() -> None:
    misses = sorted(
        f"{r['id']} {r['strategy']}" for r in ROWS if m.is_correct(r["answer"], r["expected"]) != r["correct"]
    )
    # q27: "2,000 euros." is right but leaves out the expected condition (recall 2/8);
    # q40: a list of versions that includes the right one.
    assert misses == ["q27 RAG", "q40 RAG"]
