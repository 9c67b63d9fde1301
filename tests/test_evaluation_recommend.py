"""The recommendation is computed from the numbers and the user's weights: change either, the ranking follows;
it says how many questions it rests on, and names no winner when the lead may be chance."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.evaluation.evidence import paired_lead, wilson
from core.evaluation.metrics import Forgetting
from core.evaluation.recommend import Recommendation, Weights, recommend
from core.evaluation.report import Summary

BLANK = dict(answered=40, errors=0, exact=0.0, contains=0.5, f1=0.4, similarity=0.6, supported=None, hit_at_1=None,
             hit_at_k=None, mrr=None, ttft_p50=0.1, total_p95=None, tokens_in=100.0, tokens_out=30.0)  # fmt: skip
PE = Summary("PE", "llama.cpp:base", False, 4, False, correct=0.10, total_p50=0.5, **BLANK)  # type: ignore[arg-type]
RAG = replace(PE, strategy="RAG", retrieval=True, top_k=2, correct=0.55, total_p50=1.5, hit_at_k=0.85, mrr=0.7)
FT = replace(PE, strategy="FT", model="llama.cpp:base+facts", fine_tuned=True, correct=0.70, total_p50=0.6)
FT_RAG = replace(FT, strategy="FT+RAG", retrieval=True, top_k=2, correct=0.80, total_p50=1.7, hit_at_k=0.85)
ALL = [PE, RAG, FT, FT_RAG]
TRAIN = {"llama.cpp:base+facts": 120.0}
ACCURACY_ONLY = Weights(accuracy=1, speed=0, freshness=0, training_budget=0)


def right_first(summary: Summary, n: int = 40) -> dict[str, bool]:
    """Outcomes with the summary's share right, on the first questions: the strategies nest, as they often do."""
    k = round((summary.correct or 0) * n)
    return {f"q{i}": i < k for i in range(n)}


def rec(summaries: list[Summary], weights: Weights, **kw: object) -> Recommendation:
    outcomes = {s.strategy: right_first(s, s.answered) for s in summaries}
    return recommend(summaries, weights, outcomes, **kw)  # type: ignore[arg-type]


def order(weights: Weights, summaries: list[Summary] = ALL, **kw: object) -> list[str]:
    return [r.strategy for r in rec(summaries, weights, train_seconds=TRAIN, **kw).ranking]


def test_accuracy_first_picks_the_most_accurate() -> None:
    assert order(Weights(accuracy=1, speed=0, freshness=0, training_budget=0)) == ["FT+RAG", "FT", "RAG", "PE"]


def test_speed_first_picks_the_fastest() -> None:
    assert order(Weights(accuracy=0, speed=1, freshness=0, training_budget=0))[0] == "PE"


def test_changing_documents_and_no_training_budget_pick_rag() -> None:
    ranking = order(Weights(accuracy=2, speed=0, freshness=3, training_budget=3))
    assert ranking[0] == "RAG"
    assert ranking != order(Weights(accuracy=1, speed=0, freshness=0, training_budget=0))


def test_other_numbers_give_another_ranking() -> None:
    weights = Weights(accuracy=3, speed=1, freshness=1, training_budget=1)
    before = order(weights)
    worse_retrieval = [PE, replace(RAG, correct=0.05), FT, replace(FT_RAG, correct=0.2)]
    after = order(weights, worse_retrieval)
    assert before[0] == "FT+RAG" and after[0] == "FT"


def test_measured_freshness_overrides_the_assumption() -> None:
    weights = Weights(accuracy=0, speed=0, freshness=1, training_budget=0)
    assumed = rec(ALL, weights).ranking
    assert {r.strategy for r in assumed if r.parts["freshness"] == 1.0} == {"RAG", "FT+RAG"}
    measured = rec(ALL, weights, freshness={"RAG": 1.0, "FT+RAG": 0.5, "FT": 0.0}).ranking
    assert [r.strategy for r in measured][:2] == ["RAG", "FT+RAG"]
    assert next(r for r in measured if r.strategy == "FT+RAG").parts["freshness"] == 0.5


def test_the_text_quotes_the_numbers_and_trade_offs() -> None:
    forgot = {"llama.cpp:base+facts": Forgetting(12, 1.0, 0.75)}
    got = rec(ALL, ACCURACY_ONLY, train_seconds=TRAIN, forgetting=forgot)
    assert got.settled and got.summary.startswith("**FT+RAG** ranks first with 0.80")
    assert "mostly accuracy: 80% correct versus 70% correct" in got.summary
    assert "FT+RAG was right on 4 that FT missed, and FT on 0 that FT+RAG missed" in got.summary
    assert got.evidence[0].startswith("This rests on 40 questions: PE 4 of 40 correct (10%, 95% interval 4%–23%)")
    assert len(got.evidence) == 1  # the best answers most questions: no warning
    reasons = " ".join(next(r for r in got.ranking if r.strategy == "FT+RAG").reasons)
    assert "training took 2.0 min" in reasons and "kept 75% of the 12 its base knew" in reasons
    assert "top 2 for 85% of questions" in reasons
    assert got.needs_fine_tuning is None


def test_without_a_fine_tuned_model_it_says_what_ft_needs() -> None:
    got = rec([PE, RAG], Weights())
    assert got.needs_fine_tuning and "Fine-tune page" in got.needs_fine_tuning
    assert recommend([], Weights(), {}).ranking == []


FIVE = dict(BLANK, answered=5)
PE5 = Summary("PE", "llama.cpp:base", False, 4, False, correct=0.0, total_p50=0.5, **FIVE)  # type: ignore[arg-type]
RAG5 = replace(PE5, strategy="RAG", retrieval=True, top_k=2, correct=0.2, total_p50=1.5)


def test_one_right_answer_of_five_is_not_a_ranking() -> None:
    """The issue's run: five questions, RAG right once, PE never."""
    got = rec([RAG5, PE5], ACCURACY_ONLY)
    assert not got.settled and got.summary.startswith("**Not settled.**")
    assert "ranks first" not in got.summary
    assert "RAG was right on 1 that PE missed, and PE on 0 that RAG missed" in got.summary
    assert "About 8 more questions would settle it" in got.summary
    assert got.evidence[0] == (
        "This rests on 5 questions: RAG 1 of 5 correct (20%, 95% interval 4%–62%); "
        "PE 0 of 5 correct (0%, 95% interval 0%–43%)."
    )
    assert "No strategy answered most questions correctly (the best, RAG, 1 of 5)" in got.evidence[1]


def test_a_lead_from_the_other_criteria_is_settled_and_says_so() -> None:
    got = rec([RAG5, PE5], Weights(accuracy=3, speed=0, freshness=1, training_budget=0))
    assert got.settled and got.summary.startswith("**RAG** ranks first")
    assert "With equal accuracy RAG would still lead" in got.summary
    assert "not ready yet" in got.evidence[1]


def test_every_strategy_wrong_says_so() -> None:
    got = rec([replace(RAG5, correct=0.0), PE5], Weights())
    assert "Every strategy answered all 5 questions wrongly" in got.evidence[1]


def test_strategies_that_agree_on_every_question_are_not_separated() -> None:
    got = rec([replace(RAG5, correct=0.6), replace(PE5, correct=0.6)], ACCURACY_ONLY)
    assert not got.settled and "do not separate them at all" in got.summary


@pytest.mark.parametrize(("k", "n", "low", "high"), [(1, 5, 0.0362, 0.6245), (0, 5, 0.0, 0.4345),
                                                     (5, 5, 0.5655, 1.0), (20, 40, 0.352, 0.648)])  # fmt: skip
def test_wilson_intervals_match_the_textbook(k: int, n: int, low: float, high: float) -> None:
    share = wilson(k, n)
    assert (round(share.low, 4), round(share.high, 4)) == (low, high)


def test_the_more_questions_estimate_settles_the_lead_when_they_go_alike() -> None:
    pattern = [(True, False), (True, True), (False, False), (False, True), (True, False)] * 2  # 4 to 2 on 10
    lead = paired_lead("A", "B", *[{f"q{i}": p[j] for i, p in enumerate(pattern)} for j in (0, 1)], 1.0, 0.0)
    assert (lead.leader_only, lead.runner_up_only) == (4, 2) and not lead.settled and lead.more_questions
    more = lead.more_questions
    copies = -(-(10 + more) // 10)  # the same pattern, enough times
    a, b = ({f"q{i}": p[j] for i, p in enumerate(pattern * copies)} for j in (0, 1))
    assert paired_lead("A", "B", a, b, 1.0, 0.0).settled
    fewer = ({f"q{i}": p[j] for i, p in enumerate(pattern * (copies - 2))} for j in (0, 1))
    assert not paired_lead("A", "B", *fewer, 1.0, 0.0).settled


def test_retrieval_without_sources_in_the_set_reads_not_scored() -> None:
    reasons = " ".join(rec([RAG5, PE5], Weights()).ranking[0].reasons)
    assert "not scored here: the question set names no source documents" in reasons and "MRR" not in reasons
