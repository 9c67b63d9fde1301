"""Retriever training's tables and chart: hit@k and MRR before training and after each round."""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

from core.embedding_tuner import RetrievalScores, Round, TuneResult

ITERATIVE_HELP = (
    "**Iterative** means rounds. Round 1 trains the knowledge base's embedding model on the first batch of "
    "generated questions. Each later round starts from the previous round's model and trains on the questions "
    "that model still gets wrong (its search does not put the chunk the question came from first) plus a batch "
    "of questions it has not seen. After every round the knowledge base is re-embedded and measured on the "
    "question set; the rounds stop when one does not raise MRR, or at the round limit, and the best round is "
    "kept. (The seed's iterative mode feeds a tuned generator's questions to the next round; here questions "
    "come from the template generator, so what is new each round is the unseen questions and the failures.)"
)


def score_row(label: str, scores: RetrievalScores) -> dict[str, Any]:
    row: dict[str, Any] = {"": label}
    row.update({f"hit@{k}": f"{v:.1%}" for k, v in scores.hits.items()})
    row["MRR"] = round(scores.mrr, 3)
    return row


def round_label(r: Round) -> str:
    return f"Round {r.number} ({r.new_pairs} new + {r.failures} failed pairs, {r.seconds:.0f} s)"


def scores_table(result: TuneResult) -> None:
    rows = [score_row("Before", result.before)] + [score_row(round_label(r), r.scores) for r in result.rounds]
    st.dataframe(rows, hide_index=True, width="stretch")


def rounds_chart(before: RetrievalScores, rounds: list[Round]) -> None:
    """hit@1 and MRR by round (round 0: before training)."""
    points = [(0, before)] + [(r.number, r.scores) for r in rounds]
    data = []
    for number, scores in points:
        data.append({"round": number, "metric": "MRR", "value": scores.mrr})
        data.append({"round": number, "metric": f"hit@{min(scores.hits)}", "value": scores.hits[min(scores.hits)]})
    chart = (
        alt.Chart(alt.Data(values=data))
        .mark_line(point=True)
        .encode(
            x=alt.X("round:O", title="Round (0 = before training)"),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("metric:N", title=None),
        )
        .properties(height=220)
    )
    st.altair_chart(chart, width="stretch")
