"""How sure a ranking is: Wilson intervals for each share of correct answers, and a paired bootstrap for a lead.

A strategy's correctness on n questions is a share with an error bar; two strategies asked the same
questions are compared question by question (paired), since they mostly get the same questions
right or wrong and only the questions where they differ say which is better. The lead of one
strategy's weighted score over another's is settled when it holds in at least 95% of bootstrap
resamples of the questions (the other criteria, speed, freshness and training budget, are held at
their measured values; only which questions were asked varies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964  # two-sided 95% normal quantile (Wilson interval)
SETTLED = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Share:
    """k of n answers correct, with its 95% Wilson interval (0-1)."""

    correct: int
    n: int
    low: float
    high: float

    @property
    def rate(self) -> float | None:
        return self.correct / self.n if self.n else None


def wilson(correct: int, n: int, z: float = Z95) -> Share:
    """The Wilson score interval: sound at 0 of 5 and 5 of 5, where the normal one collapses to a point."""
    if n <= 0:
        return Share(correct, 0, 0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Share(correct, n, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Lead:
    """The leader's lead over the runner-up on the questions both answered.

    `leader_only` / `runner_up_only`: questions one got right and the other wrong (the only ones that
    separate them); `stays_ahead`: share of resamples of the questions in which the leader still scores
    higher (ties count half); `more_questions`: about how many more questions, going as these did, would
    settle an unsettled lead (None when settled, or when nothing separates the two).
    """

    leader: str
    runner_up: str
    questions: int
    leader_only: int
    runner_up_only: int
    stays_ahead: float
    more_questions: int | None

    @property
    def settled(self) -> bool:
        return self.stays_ahead >= SETTLED


def paired_lead(
    leader: str,
    runner_up: str,
    leader_correct: Mapping[str, bool],
    runner_up_correct: Mapping[str, bool],
    accuracy_weight: float,
    other_difference: float,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Lead:
    """Is the leader's lead real on these questions?

    The score difference on one question is `accuracy_weight * (leader right - runner-up right)
    + other_difference`, where accuracy_weight is accuracy's share of all the weights and
    other_difference the (fixed) difference the other criteria make; its mean over the questions is
    the difference of the two weighted scores.
    """
    shared = [q for q in leader_correct if q in runner_up_correct]
    n = len(shared)
    a_only = sum(1 for q in shared if leader_correct[q] and not runner_up_correct[q])
    b_only = sum(1 for q in shared if runner_up_correct[q] and not leader_correct[q])
    if n == 0:
        return Lead(leader, runner_up, 0, 0, 0, 0.5, None)
    stays = _stays_ahead(n, a_only, b_only, accuracy_weight, other_difference, resamples, seed)
    more = None
    if stays < SETTLED and a_only * accuracy_weight + other_difference * n > (b_only * accuracy_weight):
        more = _more_questions(n, a_only, b_only, accuracy_weight, other_difference, resamples, seed)
    return Lead(leader, runner_up, n, a_only, b_only, round(stays, 4), more)


def _stays_ahead(n: int, a_only: int, b_only: int, weight: float, other: float, resamples: int, seed: int) -> float:
    """Share of bootstrap resamples (n questions drawn with replacement) in which the leader scores higher."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [a_only / n, b_only / n, (n - a_only - b_only) / n], size=resamples)
    diffs = weight * (counts[:, 0] - counts[:, 1]) / n + other
    eps = 1e-12
    return float(np.mean(diffs > eps) + 0.5 * np.mean(np.abs(diffs) <= eps))


def _more_questions(
    n: int, a_only: int, b_only: int, weight: float, other: float, resamples: int, seed: int
) -> int | None:
    """The fewest more questions that settle the lead when the separating ones come at today's rates.

    The same resampling test on a larger set with the same shares: doubling to find a size that
    settles, then halving the gap. None when no size up to 100 times today's does.
    """

    def settles(size: int) -> bool:
        a, b = round(a_only * size / n), round(b_only * size / n)
        return _stays_ahead(size, a, b, weight, other, resamples, seed) >= SETTLED

    hi = 2 * n
    while not settles(hi):
        if hi > 100 * n:
            return None
        hi *= 2
    lo = max(n, hi // 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if settles(mid) else (mid, hi)
    return hi - n
