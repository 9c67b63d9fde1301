"""The recommendation is computed from the numbers and the user's weights: change either, the ranking follows."""

from __future__ import annotations

from dataclasses import replace

from core.evaluation.metrics import Forgetting
from core.evaluation.recommend import Weights, recommend
from core.evaluation.report import Summary

BLANK = dict(answered=40, errors=0, exact=0.0, contains=0.5, f1=0.4, similarity=0.6, supported=None, hit_at_1=None,
             hit_at_k=None, mrr=None, ttft_p50=0.1, total_p95=None, tokens_in=100.0, tokens_out=30.0)  # fmt: skip
PE = Summary("PE", "llama.cpp:base", False, 4, False, correct=0.10, total_p50=0.5, **BLANK)  # type: ignore[arg-type]
RAG = replace(PE, strategy="RAG", retrieval=True, top_k=2, correct=0.55, total_p50=1.5, hit_at_k=0.85, mrr=0.7)
FT = replace(PE, strategy="FT", model="llama.cpp:base+facts", fine_tuned=True, correct=0.70, total_p50=0.6)
FT_RAG = replace(FT, strategy="FT+RAG", retrieval=True, top_k=2, correct=0.80, total_p50=1.7, hit_at_k=0.85)
ALL = [PE, RAG, FT, FT_RAG]
TRAIN = {"llama.cpp:base+facts": 120.0}


def order(weights: Weights, summaries: list[Summary] = ALL, **kw: object) -> list[str]:
    return [r.strategy for r in recommend(summaries, weights, train_seconds=TRAIN, **kw).ranking]  # type: ignore[arg-type]


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
    assumed = recommend(ALL, weights).ranking
    assert {r.strategy for r in assumed if r.parts["freshness"] == 1.0} == {"RAG", "FT+RAG"}
    measured = recommend(ALL, weights, freshness={"RAG": 1.0, "FT+RAG": 0.5, "FT": 0.0}).ranking
    assert [r.strategy for r in measured][:2] == ["RAG", "FT+RAG"]
    assert next(r for r in measured if r.strategy == "FT+RAG").parts["freshness"] == 0.5


def test_the_text_quotes_the_numbers_and_trade_offs() -> None:
    forgot = {"llama.cpp:base+facts": Forgetting(12, 1.0, 0.75)}
    rec = recommend(ALL, Weights(accuracy=1, speed=0, freshness=0, training_budget=0), train_seconds=TRAIN,
                    forgetting=forgot)  # fmt: skip
    assert rec.summary.startswith("**FT+RAG** ranks first with 0.80")
    assert "mostly accuracy: 80% correct versus 70% correct" in rec.summary
    reasons = " ".join(next(r for r in rec.ranking if r.strategy == "FT+RAG").reasons)
    assert "training took 2.0 min" in reasons and "kept 75% of the 12 its base knew" in reasons
    assert "top 2 for 85% of questions" in reasons
    assert rec.needs_fine_tuning is None


def test_without_a_fine_tuned_model_it_says_what_ft_needs() -> None:
    rec = recommend([PE, RAG], Weights())
    assert rec.needs_fine_tuning and "Fine-tune page" in rec.needs_fine_tuning
    assert recommend([], Weights()).ranking == []
