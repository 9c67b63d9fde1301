"""Which sentence of which retrieved chunk supports an answer (Compare's "Supported by", Evaluate's "supported").

Evaluate's figure is the share of an answer's sentences that a retrieved sentence supports.

An answer sentence is supported by a source sentence when every number it states is in that
sentence, most of its words are there, at least OWN_RECALL of its own words (those the question
does not already hold) are there, and the two are close in meaning (cosine >= SUPPORTED_THRESHOLD;
for Chinese or Japanese, which the bundled MiniLM does not read, most of the answer's words must be
in it instead). So an answer that only restates its question is supported by nothing, and a sentence
about `upgrade` does not support "apt-get" as the command that holds a package back. A short answer
("20 weeks.") says little on its own, so its cosine is taken with its question ("How long is parental
leave? 20 weeks."). Among the sentences that pass, the one sharing most of the answer's words wins.
Sentences are `core.text.sentence_spans`, the prompt's excerpt's too (. ! ? and the Chinese and Japanese
。！？；, so a Chinese chunk is split as well as an English one), so a highlight and the excerpt agree.

Calibrated on 72 hand-labelled answers to 24 questions on the Debian Reference
(tests/fixtures/support_labels.jsonl; bench/support.py prints the agreement).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.evaluation import metrics
from core.text import is_cjk, sentence_spans

SUPPORTED_THRESHOLD = 0.55  # the runner's: an answer sentence counts as supported from here
SHORT_CLAIM_TOKENS = 10
SHORT_OVERLAP, LONG_OVERLAP = 0.5, 0.34  # share of the answer's words the sentence must hold
RECALL = metrics.RECALL_THRESHOLD  # without embeddings
WHOLE_ANSWER_SLACK = 0.1
OWN_RECALL = 0.75  # share of the answer's own words (those not in the question) the sentence must hold
QUESTION_RECALL = 0.5  # share of the question's words the answer is about (see claim_supports)
# Words that carry no fact: sharing them says nothing about support.
_STOPWORD_TEXT = """
    i me my we our you your he she it its they them their this that these those is are was were be been being
    am has have had do does did of to in on at by for with from as and or but not no so if than then there
    what which who whom when where why how can could will would should may might must shall answer question text
    command sentence following use used using certain way something some thing like run show look
    的 了 是 在 和 与 及 或 吗 呢 吧 啊 也 都 就 而 之 其 为 以 于 被 把 对 从 这 那 个 有
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

Embed = Callable[[list[str]], list[list[float]]]


@dataclass(frozen=True)
class Support:
    """A retrieved sentence that supports the answer.

    `chunk` is its source's index (0-based, in the order shown); `start` and `end` place it in that
    source's text; `score` is its cosine with the answer sentence it supports.
    """

    chunk: int
    sentence: str
    score: float
    start: int
    end: int


def _stem(token: str) -> str:
    """A plural's singular, so "keeps" meets "keep" and "files" meets "file"; nothing cleverer."""
    if len(token) > 3 and token.isascii() and token.isalpha():
        if token.endswith("ies"):
            return token[:-3] + "y"
        if token.endswith("s") and not token.endswith("ss"):
            return token[:-1]
    return token


def _content(text: str) -> Counter[str]:
    return Counter(_stem(t) for t in metrics.tokens(text) if t not in _STOPWORDS and _stem(t) not in _STOPWORDS)


def _overlap(claim: Counter[str], sentence: str) -> float:
    if not claim:
        return 0.0
    return sum((claim & _content(sentence)).values()) / sum(claim.values())


def supporting_sentences(
    answer: str,
    question: str,
    chunks: Sequence[str],
    embed: Embed | None,
    *,
    threshold: float = SUPPORTED_THRESHOLD,
    limit: int = 2,
) -> list[Support]:
    """The retrieved sentences that best support the answer, one per answer sentence, in answer order.

    Args:
        embed: texts -> vectors (normalised or not). None: words alone decide, a sentence holding
            every number and at least 60% of the answer's words counting as support.
        threshold: the least cosine between an answer sentence (a short one with its question) and a
            source sentence that supports it.

    Returns:
        At most `limit` supports, no sentence twice; empty when no retrieved sentence supports the answer.
    """
    out: list[Support] = []
    for support in claim_supports(answer, question, chunks, embed, threshold=threshold):
        if support is not None and all((s.chunk, s.start) != (support.chunk, support.start) for s in out):
            out.append(support)
        if len(out) >= limit:
            break
    return out


def supported_share(
    answer: str, question: str, chunks: Sequence[str], embed: Embed | None, *, threshold: float = SUPPORTED_THRESHOLD
) -> float | None:
    """Share of the answer's sentences that a retrieved sentence supports; None when there is nothing to judge."""
    supports = claim_supports(answer, question, chunks, embed, threshold=threshold)
    if not supports or not any(sentence_spans(c) for c in chunks):
        return None
    return sum(s is not None for s in supports) / len(supports)


def _candidates(chunks: Sequence[str]) -> tuple[int, list[tuple[int, int, int]]]:
    """(chunk, start, end) of every sentence, then of every two neighbouring sentences of one chunk; how many single."""
    spans = [(i, start, end) for i, text in enumerate(chunks) for start, end in sentence_spans(text)]
    pairs = [(a[0], a[1], b[2]) for a, b in zip(spans, spans[1:], strict=False) if a[0] == b[0]]
    return len(spans), spans + pairs


def claim_supports(
    answer: str, question: str, chunks: Sequence[str], embed: Embed | None, *, threshold: float = SUPPORTED_THRESHOLD
) -> list[Support | None]:
    """For each sentence of the answer (`metrics.claims`), the retrieved sentence that supports it, or None.

    A sentence supports a claim when it holds every number of the claim, most of the claim's words,
    at least OWN_RECALL of the claim's own words (those its question does not already say: an answer
    that restates the question is supported by nothing), and is close in meaning. Where no single
    sentence does, two neighbouring sentences of one chunk may (a command on the line after the
    sentence that introduces it; a sentence that PDF or text wrapping cut in two).
    """
    claims = metrics.claims(answer) or ([answer.strip()] if metrics.tokens(answer) else [])
    singles, found = _candidates(chunks)
    if not claims or not found:
        return [None] * len(claims)
    texts = [chunks[i][start:end] for i, start, end in found]
    contexts = [c if len(metrics.tokens(c)) >= SHORT_CLAIM_TOKENS else f"{question} {c}".strip() for c in claims]
    vectors = embed([*contexts, *texts]) if embed is not None else []
    asked = _content(question)
    out: list[Support | None] = []
    for k, claim in enumerate(claims):
        wanted, numbers = _content(claim), metrics.numbers(claim)
        own = wanted - asked  # what the answer adds to its question
        if not own:
            out.append(None)  # it restates the question: no sentence supports saying nothing
            continue
        # What the answer says its words are: the question's words it repeats, or (a bare "apt-get.") the
        # question's. A sentence about `apt-get upgrade` is no support for apt-get holding a package back.
        about = (wanted & asked) or asked
        cjk = is_cjk(claim)
        best: tuple[bool, float, float, int] | None = None
        for j, text in enumerate(texts):
            tokens = set(metrics.tokens(text))
            if any(n not in tokens for n in numbers):
                continue  # "45 euros" is no support for an answer of 25 euros, however alike they read
            overlap = _overlap(wanted, text)
            closeness = metrics.cosine(vectors[k], vectors[len(claims) + j]) if embed is not None else overlap
            # Read with its question, a short answer is close to the right sentence whatever it says:
            # its own words must be there too.
            least = SHORT_OVERLAP if contexts[k] != claim else LONG_OVERLAP
            # MiniLM reads English only: for Chinese or Japanese the words decide, the cosine only ranks.
            by_words = embed is None or cjk
            # Every word of the answer in the sentence: a long sentence that says more may score lower.
            needed = threshold - WHOLE_ANSWER_SLACK if overlap == 1.0 else threshold
            passes = (
                overlap >= least
                and _overlap(own, text) >= OWN_RECALL
                and (not about or _overlap(about, text) >= QUESTION_RECALL)
                and (overlap >= RECALL if by_words else closeness >= needed)
            )
            single = j < singles  # one sentence beats two that say the same
            if passes and (best is None or (single, overlap, closeness) > best[:3]):
                best = (single, overlap, closeness, j)
        if best is None:
            out.append(None)
            continue
        i, start, end = found[best[3]]
        out.append(Support(i, texts[best[3]], round(best[2], 4), start, end))
    return out
