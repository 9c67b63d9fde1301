"""Which sentence of which retrieved chunk supports an answer (core.evaluation.support), with the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.embeddings import EmbeddingModel
from core.evaluation.support import Embed, Support, supported_share, supporting_sentences
from core.text import sentence_spans

LABELS = Path(__file__).parent / "fixtures" / "support_labels.jsonl"

LEAVE = (
    "Sick leave and parental leave\n"
    "If you are ill, tell your manager before 10:00 on the first day of absence.\n"
    "Brackenridge offers 20 weeks of parental leave at full pay to every parent, whatever their gender and\n"
    "however their child arrives in the family. Parental leave may be taken in up to three blocks."
)
EXPENSES = (
    "Meals while travelling are reimbursed up to a daily cap of 45 euros in total; alcohol is never reimbursed. "
    "Client dinners are reimbursed at cost up to 80 euros per person."
)
QUESTION = "How long is parental leave at full pay?"


@pytest.fixture(scope="module")
def embed(minilm: EmbeddingModel) -> Embed:
    return minilm.embeddings.embed_documents


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two words! Three?", ["One.", "Two words!", "Three?"]),
        ("Heading\nThe first sentence wraps\nover two lines. Then 3.8 stays whole.",
         ["Heading", "The first sentence wraps\nover two lines.", "Then 3.8 stays whole."]),
        ("- a bullet\n- another one\n\nA paragraph.", ["- a bullet", "- another one", "A paragraph."]),
        ("assembled in a boat shed on\nKelder Quay. Today", ["assembled in a boat shed on\nKelder Quay.", "Today"]),
        ("员工每年享有15天带薪年假。病假需提供医生证明！加班需要提前申请吗？",
         ["员工每年享有15天带薪年假。", "病假需提供医生证明！", "加班需要提前申请吗？"]),
        ("...\n\n", []),
    ],
)  # fmt: skip
def test_a_chunk_splits_into_sentences_at_english_and_cjk_ends(text: str, expected: list[str]) -> None:
    assert [text[s:e] for s, e in sentence_spans(text)] == expected


def test_a_short_answer_is_supported_by_the_sentence_that_states_it(embed: Embed) -> None:
    [support] = supporting_sentences("20 weeks.", QUESTION, [EXPENSES, LEAVE], embed)
    assert isinstance(support, Support) and support.chunk == 1
    assert support.sentence.startswith("Brackenridge offers 20 weeks of parental leave at full pay")
    assert LEAVE[support.start : support.end] == support.sentence
    assert support.score >= 0.55


def test_a_full_sentence_answer_and_a_two_part_answer_find_each_sentence(embed: Embed) -> None:
    answer = "Parental leave is 20 weeks at full pay. Meals are reimbursed up to 45 euros a day."
    supports = supporting_sentences(answer, "", [LEAVE, EXPENSES], embed)
    assert [(s.chunk, s.sentence.split()[0]) for s in supports] == [(0, "Brackenridge"), (1, "Meals")]


@pytest.mark.parametrize(
    "answer",
    [
        "25 weeks.",  # a number no retrieved sentence holds
        "I don't know.",
        "Ilse Marrow.",  # read with the question it sounds close, but none of its words are there
        "The answer is: 2.",
    ],
)
def test_an_answer_no_retrieved_sentence_supports_gets_none(embed: Embed, answer: str) -> None:
    assert supporting_sentences(answer, QUESTION, [LEAVE, EXPENSES], embed) == []


def test_a_chinese_answer_is_supported_by_its_chinese_sentence(embed: Embed) -> None:
    chunk = "员工手册\n员工每年享有15天带薪年假。病假需提供医生证明！加班需要提前申请吗？"
    [support] = supporting_sentences("每年15天带薪年假。", "年假有几天？", [chunk], embed)
    assert support.sentence == "员工每年享有15天带薪年假。"
    assert chunk[support.start : support.end] == support.sentence
    assert supporting_sentences("每年20天。", "年假有几天？", [chunk], embed) == []


def test_without_embeddings_words_alone_decide() -> None:
    [support] = supporting_sentences("20 weeks of parental leave.", QUESTION, [LEAVE], None)
    assert support.sentence.startswith("Brackenridge offers 20 weeks")
    assert supporting_sentences("Ilse Marrow.", QUESTION, [LEAVE], None) == []
    assert supporting_sentences("", QUESTION, [LEAVE], None) == []
    assert supporting_sentences("20 weeks.", QUESTION, [], None) == []


UPGRADE = (
    'With this configuration, usual execution of "apt-get upgrade" and\n'
    '    "apt-get dist-upgrade" (or "aptitude safe-upgrade" and "aptitude\n'
    '    full-upgrade") upgrades packages which were installed from\n'
    "    testing archive using current testing archive."
)
REPORTBUG = "When you file a bug report, please use reportbug(1) command.\n\n2.2. Basic package management operations"


@pytest.mark.parametrize(
    ("answer", "question", "chunk"),
    [
        ("The command that keeps a package from being upgraded is apt-get.",  # the wrong answer
         "Which command keeps a package from being upgraded?", UPGRADE),
        ("apt-get.", "Which command keeps a package from being upgraded?", UPGRADE),
        ("Parental leave at full pay is a long one.", QUESTION, LEAVE),  # restates the question
        ('The answer to the question is: "How long is parental leave at full pay?"', QUESTION, LEAVE),
    ],
)  # fmt: skip
def test_an_answer_whose_own_words_the_sentence_lacks_is_not_supported(
    embed: Embed, answer: str, question: str, chunk: str
) -> None:
    assert supporting_sentences(answer, question, [chunk], embed) == []
    assert supported_share(answer, question, [chunk], embed) == 0.0


def test_a_right_answer_the_source_states_is_supported(embed: Embed) -> None:
    """The issue's FT+RAG answer about reportbug read "Not supported" although source 1 says it."""
    question = "Which command should you use when you file a bug report?"
    for answer in ("Use the reportbug command to file a bug report.", "reportbug", "You should use reportbug(1)."):
        [support] = supporting_sentences(answer, question, [UPGRADE, REPORTBUG], embed)
        assert support.chunk == 1 and support.sentence.startswith("When you file a bug report")


def test_a_sentence_wrapped_over_lines_is_one_sentence() -> None:
    text = 'enables verification of installed\n    package files in the "/var/lib/dpkg/info/\n    *.md5sums" file.'
    assert [text[s:e] for s, e in sentence_spans(text)] == [text]


def test_the_runner_share_counts_each_answer_sentence(embed: Embed) -> None:
    answer = "Parental leave is 20 weeks at full pay. The office has a sauna on the roof."
    assert supported_share(answer, QUESTION, [LEAVE], embed) == 0.5
    assert supported_share(answer, QUESTION, [], embed) is None


SLICE = ("d09", "d10", "d11", "d13", "d14", "d15", "d16", "d17", "d18")  # 27 answers: a third, to stay fast


def test_hand_labelled_answers_on_the_debian_reference_agree(embed: Embed) -> None:
    """A slice of the 72 hand-labelled answers on real documents (bench/support.py measures all: 65 of 72).

    The slice holds right, wrong, restating and copied answers; main's rules disagreed on 9 of these 27.
    """
    cache: dict[str, list[float]] = {}

    def cached(texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, embed(missing), strict=True))
        return [cache[t] for t in texts]

    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    assert sum(len(r["answers"]) for r in rows) >= 60
    misses = [
        f"{r['id']}: {a['answer'][:60]!r}"
        for r in rows
        if r["id"] in SLICE
        for a in r["answers"]
        if bool(supporting_sentences(a["answer"], r["question"], r["chunks"], cached)) != a["supported"]
    ]
    assert len(misses) <= 2, misses
