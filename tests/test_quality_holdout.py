"""The held-out sample (Corvane): every answer is on its page, and it loads like the other samples."""

from __future__ import annotations

import re

from core.documents import parse
from core.evaluation import questions as qs
from core.samples import ENGLISH, HOLDOUT, SAMPLES
from tests.test_samples import content_words


def test_holdout_is_registered_beside_the_other_samples() -> None:
    assert SAMPLES[HOLDOUT.kb_name] is HOLDOUT and SAMPLES[ENGLISH.kb_name] is ENGLISH
    assert HOLDOUT.kb_name != ENGLISH.kb_name and HOLDOUT.folder != ENGLISH.folder
    assert qs.sample_set(HOLDOUT.kb_name).name == f"{qs.SAMPLE_SET}-{HOLDOUT.kb_name}"
    assert qs.sample_set().name == qs.SAMPLE_SET  # the English sample keeps its name


def test_every_holdout_question_is_answered_on_its_page() -> None:
    texts = {
        (u.filename, p.number): " ".join(p.text.split())
        for u in HOLDOUT.uploads()
        for p in parse(u.data, u.filename).pages
    }
    questions = HOLDOUT.questions()
    assert len(questions) >= 20 and len({q.id for q in questions}) == len(questions)
    assert len(texts) >= 6  # a five-page manual (form feeds) and a one-page Markdown document
    for q in questions:
        page = texts[(q.source, q.page)]
        numbers = [n.rstrip(".,") for n in re.findall(r"\d[\d,.:]*", q.answer)]
        assert all(n in page for n in numbers), f"{q.id}: {numbers} not all on {q.source} page {q.page}"
        words = content_words(q.answer)
        found = [w for w in words if w in page.lower()]
        assert len(found) >= 0.6 * len(words), f"{q.id}: only {found} of {words} on {q.source} page {q.page}"
