"""The recommendation: strategies ranked from a run's measured numbers and the user's priorities.

Each strategy gets a 0-1 score per criterion, from measurements only:
- accuracy: its share of correct answers;
- speed: the fastest median total time divided by its own (1 for the fastest);
- freshness: the share of changed facts it followed in the freshness experiment when that was
  run, else 1 with retrieval (it reads the edited document) and 0 without (it needs retraining);
- training budget: 1 without fine-tuning, else 1 / (1 + training minutes) from the adapter's manifest.
The ranking is the weighted mean; the text quotes the numbers behind it, how many questions they rest
on (each correctness with its 95% Wilson interval), and whether the leader's lead over the next holds
on resamples of the same questions (core.evaluation.evidence). When it does not, the text says so, and
about how many more questions would settle it, instead of naming a winner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.evaluation.evidence import RESAMPLES, Lead, Share, paired_lead, wilson
from core.evaluation.metrics import Forgetting
from core.evaluation.report import Summary

CRITERIA = ("accuracy", "speed", "freshness", "training budget")


@dataclass(frozen=True)
class Weights:
    """How much each criterion matters to the user (any non-negative numbers; only ratios count)."""

    accuracy: float = 3.0
    speed: float = 1.0
    freshness: float = 1.0
    training_budget: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return dict(zip(CRITERIA, (self.accuracy, self.speed, self.freshness, self.training_budget), strict=True))


@dataclass(frozen=True)
class Ranked:
    strategy: str
    score: float
    parts: dict[str, float]  # criterion -> 0-1 score
    reasons: list[str]


@dataclass(frozen=True)
class Recommendation:
    """The ranking and what it rests on.

    `settled` is False when the leader's lead over the next strategy may be chance (then `summary`
    names no winner); `evidence` says how many questions each correctness rests on, with its interval.
    """

    ranking: list[Ranked]
    summary: str
    needs_fine_tuning: str | None  # what FT would need, when the run has no fine-tuned model
    evidence: list[str] = field(default_factory=list)
    shares: dict[str, Share] = field(default_factory=dict)
    lead: Lead | None = None

    @property
    def settled(self) -> bool:
        return self.lead is None or self.lead.settled


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def _secs(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def recommend(
    summaries: Sequence[Summary],
    weights: Weights,
    outcomes: Mapping[str, Mapping[str, bool]],
    *,
    train_seconds: Mapping[str, float] | None = None,
    forgetting: Mapping[str, Forgetting] | None = None,
    freshness: Mapping[str, float] | None = None,
) -> Recommendation:
    """Rank the strategies of one run.

    Args:
        outcomes: per strategy name, question id -> answered correctly (`report.outcomes`); the paired
            test compares the leader and the next on the questions both answered.
        train_seconds: training time per fine-tuned model id (from its manifest).
        forgetting: control-set result per fine-tuned model id.
        freshness: per strategy name, the share of changed facts answered with the new value.
    """
    usable = [s for s in summaries if s.correct is not None]
    if not usable:
        return Recommendation([], "No answers yet: run an evaluation first.", None)
    w = weights.as_dict()
    total_weight = sum(w.values()) or 1.0
    ranked = _rank(usable, w, total_weight, train_seconds or {}, forgetting or {}, freshness or {})
    shares = {s.strategy: _share(s, outcomes.get(s.strategy)) for s in usable}
    evidence = [_evidence_text(usable, shares)]
    if weak := _weak_text(usable, shares):
        evidence.append(weak)
    needs = None if any(s.fine_tuned for s in usable) else NEEDS_FINE_TUNING
    best = ranked[0]
    if len(ranked) == 1:
        text = f"**{best.strategy}** is the only strategy in this run: {best.score:.2f} of 1 on your priorities " + (
            _weights_text(w) + "; evaluate at least two to compare."
        )
        return Recommendation(ranked, text, needs, evidence, shares)
    second = ranked[1]
    acc_share = w["accuracy"] / total_weight
    others = sum(w[c] * (best.parts[c] - second.parts[c]) for c in CRITERIA if c != "accuracy") / total_weight
    lead = paired_lead(
        best.strategy, second.strategy, outcomes.get(best.strategy, {}), outcomes.get(second.strategy, {}),
        acc_share, others,
    )  # fmt: skip
    text = _summary_text(best, second, lead, w, {s.strategy: s for s in usable}, others)
    return Recommendation(ranked, text, needs, evidence, shares, lead)


NEEDS_FINE_TUNING = (
    "No fine-tuned model was evaluated: FT needs question/answer pairs for your facts (the sample facts, "
    "a dataset, or this run's failures) and one training run on the Fine-tune page (the default takes "
    "about a minute for 40 facts on 2 CPU cores); evaluate again with FT and FT+RAG to compare."
)


def _rank(
    usable: Sequence[Summary],
    w: dict[str, float],
    total_weight: float,
    train_seconds: Mapping[str, float],
    forgetting: Mapping[str, Forgetting],
    freshness: Mapping[str, float],
) -> list[Ranked]:
    """Each strategy's 0-1 score per criterion and weighted mean, best first."""
    p50s = [s.total_p50 for s in usable if s.total_p50]
    fastest = min(p50s) if p50s else None
    ranked = []
    for s in usable:
        minutes = train_seconds.get(s.model, 0.0) / 60 if s.fine_tuned else 0.0
        parts = {
            "accuracy": s.correct or 0.0,
            "speed": (fastest / s.total_p50) if fastest and s.total_p50 else 0.0,
            "freshness": freshness.get(s.strategy, 1.0 if s.retrieval else 0.0),
            "training budget": 1.0 / (1.0 + minutes) if s.fine_tuned else 1.0,
        }
        score = sum(w[c] * parts[c] for c in CRITERIA) / total_weight
        ranked.append(Ranked(s.strategy, score, parts, _reasons(s, minutes, forgetting.get(s.model), freshness)))
    ranked.sort(key=lambda r: (-r.score, -r.parts["accuracy"], r.strategy))
    return ranked


def _summary_text(
    best: Ranked, second: Ranked, lead: Lead, w: dict[str, float], by_name: Mapping[str, Summary], others: float
) -> str:
    """The leader named with what decides it, or, when its lead may be chance, 'not settled' and why."""
    if not lead.settled:
        more = (
            f"About {lead.more_questions} more questions would settle it, if they go as these did."
            if lead.more_questions is not None
            else "These questions do not separate them at all; ask questions on which they may differ."
        )
        return (
            f"**Not settled.** On your priorities {_weights_text(w)}, {best.strategy} ({best.score:.2f} of 1) and "
            f"{second.strategy} ({second.score:.2f}) are too close for {_questions(lead.questions)} to tell apart: "
            + _lead_text(lead)
            + f" {more} The scores below are not a ranking."
        )
    decisive = max(CRITERIA, key=lambda c: w[c] * (best.parts[c] - second.parts[c]))
    versus = (
        f"{_criterion(decisive, by_name[best.strategy], best)} versus "
        f"{_criterion(decisive, by_name[second.strategy], second)}"
    )
    return (
        f"**{best.strategy}** ranks first with {best.score:.2f} of 1 on your priorities {_weights_text(w)}. "
        f"Against {second.strategy} ({second.score:.2f}) the difference is mostly {decisive}: {versus}. "
        + _lead_text(lead)
        + (f" With equal accuracy {best.strategy} would still lead, on the other criteria." if others > 0 else "")
    )


def outcome_counts(outcomes: Mapping[str, bool]) -> tuple[int, int]:
    """(correct, answered) of one strategy's outcomes."""
    return sum(outcomes.values()), len(outcomes)


def _share(s: Summary, outcomes: Mapping[str, bool] | None) -> Share:
    if outcomes is not None:
        return wilson(*outcome_counts(outcomes))
    return wilson(round((s.correct or 0.0) * s.answered), s.answered)


def _interval(share: Share) -> str:
    return f"{share.correct} of {share.n} correct ({_pct(share.rate)}, 95% interval {share.low:.0%}–{share.high:.0%})"


def _evidence_text(usable: Sequence[Summary], shares: Mapping[str, Share]) -> str:
    sizes = sorted({shares[s.strategy].n for s in usable})
    size = _questions(sizes[0]) if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]} questions"
    parts = "; ".join(f"{s.strategy} {_interval(shares[s.strategy])}" for s in usable)
    return f"This rests on {size}: {parts}."


def _questions(n: int) -> str:
    return "1 question" if n == 1 else f"{n} questions"


def _weak_text(usable: Sequence[Summary], shares: Mapping[str, Share]) -> str | None:
    top = max(usable, key=lambda s: shares[s.strategy].rate or 0.0)
    share = shares[top.strategy]
    if share.correct == 0:
        return (
            f"Every strategy answered {'the one question' if share.n == 1 else f'all {share.n} questions'} wrongly: "
            "accuracy cannot rank them, and none is ready. "
            "Check the expected answers, the knowledge base and the retrieval settings (open a few cells) first."
        )
    if (share.rate or 0.0) < 0.5:
        return (
            f"No strategy answered most questions correctly (the best, {top.strategy}, {share.correct} of "
            f"{share.n}): whichever ranks first is not ready yet."
        )
    return None


def _lead_text(lead: Lead) -> str:
    return (
        f"On the same {_questions(lead.questions)} {lead.leader} was right on {lead.leader_only} that "
        f"{lead.runner_up} missed, and {lead.runner_up} on {lead.runner_up_only} that {lead.leader} missed; "
        f"{lead.leader} stays ahead in {lead.stays_ahead:.0%} of {RESAMPLES:,} resamples of these questions."
    )


def _weights_text(w: dict[str, float]) -> str:
    return "(" + ", ".join(f"{c} {w[c]:g}" for c in CRITERIA) + ")"


def _criterion(c: str, s: Summary, r: Ranked) -> str:
    if c == "accuracy":
        return f"{_pct(s.correct)} correct"
    if c == "speed":
        return f"{_secs(s.total_p50)} median answer time"
    if c == "freshness":
        return f"{_pct(r.parts['freshness'])} of changed facts followed"
    return "no training" if not s.fine_tuned else f"training score {r.parts['training budget']:.2f}"


def _reasons(s: Summary, minutes: float, forgot: Forgetting | None, freshness: Mapping[str, float]) -> list[str]:
    out = [
        f"{_pct(s.correct)} correct (token F1 {s.f1 or 0:.2f}); median {_secs(s.total_p50)}, p95 {_secs(s.total_p95)}"
    ]
    if s.retrieval:
        retrieval = (
            f"the right document in the top {s.top_k} for {_pct(s.hit_at_k)} of questions, MRR {s.mrr or 0:.2f}"
            if s.hit_at_k is not None
            else "not scored here: the question set names no source documents"
        )
        out.append(
            f"RAG side: reads your documents, so an edit counts at once and every answer cites its sources; but it "
            f"depends on retrieval ({retrieval}) and the retrieved text makes prompts longer "
            f"({s.tokens_in or 0:.0f} tokens in)."
        )
    if s.fine_tuned:
        forgot_text = (
            f"on general questions it kept {_pct(forgot.tuned_accuracy)} of the {forgot.kept} its base knew"
            if forgot is not None and forgot.kept
            else "what it forgot is not measured yet (run the control set)"
        )
        out.append(
            f"FT side: answers from its weights; training took {minutes:.1f} min and must be repeated when the facts "
            f"change; {forgot_text}."
        )
    if s.strategy in freshness:
        out.append(f"Freshness experiment: followed {_pct(freshness[s.strategy])} of the changed facts.")
    if not s.retrieval and not s.fine_tuned:
        out.append(
            "PE side: no retrieval and no training, so the fastest and cheapest; it knows only what the model knew."
        )
    if s.errors:
        out.append(f"{s.errors} answer(s) failed with an error and count as wrong.")
    return out
