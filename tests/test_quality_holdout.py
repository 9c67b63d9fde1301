"""The held-out samples (Corvane, Vellacourt): every answer is on its page, and they load like the other samples."""

from __future__ import annotations

import re
from pathlib import Path

from core.documents import parse
from core.evaluation import questions as qs
from core.samples import ENGLISH, HOLDOUT, HOLDOUT_PDF, HOLDOUTS, SAMPLES, Sample
from tests.test_samples import content_words


def page_texts(sample: Sample) -> dict[tuple[str, int], str]:
    """Each page of the sample's documents as the app parses it, whitespace collapsed."""
    return {
        (u.filename, p.number): " ".join(p.text.split())
        for u in sample.uploads()
        for p in parse(u.data, u.filename).pages
    }


def assert_answers_on_their_pages(sample: Sample, texts: dict[tuple[str, int], str]) -> None:
    questions = sample.questions()
    assert len(questions) >= 20 and len({q.id for q in questions}) == len(questions)
    for q in questions:
        page = texts[(q.source, q.page)]
        numbers = [n.rstrip(".,") for n in re.findall(r"\d[\d,.:]*", q.answer)]
        assert all(n in page for n in numbers), f"{q.id}: {numbers} not all on {q.source} page {q.page}"
        words = content_words(q.answer)
        found = [w for w in words if w in page.lower()]
        assert len(found) >= 0.6 * len(words), f"{q.id}: only {found} of {words} on {q.source} page {q.page}"


def test_holdouts_are_registered_beside_the_other_samples() -> None:
    assert HOLDOUTS == (HOLDOUT, HOLDOUT_PDF)
    for sample in HOLDOUTS:
        assert SAMPLES[sample.kb_name] is sample
        assert sample.kb_name != ENGLISH.kb_name and sample.folder != ENGLISH.folder
        assert qs.sample_set(sample.kb_name).name == f"{qs.SAMPLE_SET}-{sample.kb_name}"
    assert SAMPLES[ENGLISH.kb_name] is ENGLISH
    assert qs.sample_set().name == qs.SAMPLE_SET  # the English sample keeps its name


def test_every_holdout_question_is_answered_on_its_page() -> None:
    texts = page_texts(HOLDOUT)
    assert len(texts) >= 6  # a five-page manual (form feeds) and a one-page Markdown document
    assert_answers_on_their_pages(HOLDOUT, texts)


def test_every_pdf_holdout_question_is_answered_on_its_pdf_page() -> None:
    texts = page_texts(HOLDOUT_PDF)
    assert {name for name, _ in texts} == {"hearthcell_hc10_manual.pdf"}
    assert sorted(number for _, number in texts) == list(range(1, 8))  # one `=== Title` section a page
    assert_answers_on_their_pages(HOLDOUT_PDF, texts)
    # Not all on page 1: the answers spread over the manual.
    assert {q.page for q in HOLDOUT_PDF.questions()} == set(range(1, 8))


# The sentence each PDF question's answer comes from (a part of it), found on that page and no other:
# the looser word check above would also pass on a page that only shares the numbers or the header.
PDF_EVIDENCE = {
    "p01": "made by Vellacourt Energy Systems",
    "p02": "up to 5 minutes after shutdown",
    "p03": "Usable energy: 10.4 kWh",
    "p04": "base unit weighs 118 kg, it must always be carried by at least two people",
    "p05": "Operating temperature: -10 °C to 45 °C",
    "p06": "300 mm of free space above the unit",
    "p07": "pairing code is printed on the silver label behind the front cover",
    "p08": "Wake button under the display for 3 seconds",
    "p09": "the mode the battery is set to when it leaves the factory",
    "p10": "backup reserve is set to 20 percent by default",
    "p11": "default cheap window runs from 00:30 to 05:30",
    "p12": "holds the full charge for 48 hours or until you end it in the app",
    "p13": "Every six months: clean the air intake filter",
    "p14": "part number VF-220",
    "p15": "charge it to 50 percent, switch it off with the red isolator",
    "p16": "E114 - Current sensor reversed. The CT clamp on the grid cable is fitted the wrong way round",
    "p17": "A cell has reached 55 °C. The battery stops charging and discharging",
    "p18": "10 years from the date of commissioning",
    "p19": "not registered within 60 days is covered by the basic warranty of 5 years only",
    "p20": "Support line: 0330 014 7720",
}


def test_each_pdf_holdout_answer_comes_from_a_sentence_on_its_page_only() -> None:
    texts = page_texts(HOLDOUT_PDF)
    questions = HOLDOUT_PDF.questions()
    assert PDF_EVIDENCE.keys() == {q.id for q in questions}
    for q in questions:
        pages = [number for (_, number), text in texts.items() if PDF_EVIDENCE[q.id] in text]
        assert pages == [q.page], f"{q.id}: {PDF_EVIDENCE[q.id]!r} found on pages {pages}, expected {q.page}"


def test_committed_holdout_pdf_matches_its_source(tmp_path: Path) -> None:
    import samples.build_pdf as build_pdf

    rebuilt = build_pdf.build(build_pdf.HEARTHCELL, target=tmp_path / "manual.pdf")
    assert rebuilt.read_bytes() == build_pdf.HEARTHCELL.target.read_bytes()
    assert build_pdf.HEARTHCELL.target.parent == HOLDOUT_PDF.folder
