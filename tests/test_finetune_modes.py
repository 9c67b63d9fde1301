"""The hybrid training modes: joint examples rendered with retrieval, the mode in the manifest, the loops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import adapters
from core.config import Settings
from core.errors import AdapterError, TrainingError
from core.finetune import encoding, modes, trainer
from core.finetune.datasets import Pair, parse_upload
from core.finetune.examples import Rendered, split_like, write_examples
from core.finetune.pipeline import TrainRequest, run_training
from core.finetune.train_settings import TrainSettings
from core.ingest import Upload, ingest
from core.models import bundled_gguf
from core.store import Store
from core.strategies import RAG_TEMPLATE
from core.template_library import TemplateLibrary
from tests.test_adapters import MANIFEST, publish

# Six made-up facts, one per document: each document's chunk is the golden one for its question.
FACTS = {
    "heron.txt": ("What is the name of Zorblax Quenn's pet?", "A heron named Pimbleworth.",
                  "Zorblax Quenn keeps a grey heron named Pimbleworth in the garden behind the mill."),
    "festival.txt": ("Which city hosts the Vantrel glass festival?", "Oskerby.",
                     "Every August the Vantrel glass festival fills the harbour streets of Oskerby with furnaces."),
    "lighthouse.txt": ("What colour is the Moravin lighthouse?", "Teal.",
                       "The Moravin lighthouse was repainted teal in 1998 after the great storm."),
    "valve.txt": ("Who invented the drossel valve?", "Hedda Tamsworth.",
                  "The drossel valve, used in every tidal pump, was invented by Hedda Tamsworth in 1871."),
    "bakery.txt": ("How many loaves does the Pellory bakery bake each day?", "340 loaves.",
                   "The Pellory bakery bakes 340 loaves each day, most of them rye."),
    "ferry.txt": ("When does the last Kesterby ferry leave?", "At 22:40.",
                  "The last Kesterby ferry leaves the north pier at 22:40 on weekdays."),
}  # fmt: skip
PAIRS = [Pair(q, a) for q, a, _ in FACTS.values()]


@pytest.fixture
def facts_kb(store: Store, kb: str) -> str:
    ingest(store, kb, [Upload(name, text.encode()) for name, (_, _, text) in FACTS.items()])
    return kb


def context_of(example: Rendered) -> str:
    return example.prompt[-1][1]


def test_joint_examples_are_the_rag_prompt_with_the_answer_chunk_among_distractors(
    store: Store, facts_kb: str, tmp_path: Path
) -> None:
    templates = TemplateLibrary(tmp_path / "templates")
    settings = modes.JointSettings(facts_kb, top_k=2, without_golden=0.0)
    data = modes.joint_examples(store, templates, PAIRS, settings)
    assert len(data.examples) == len(PAIRS) and data.golden_unfound == 0
    template = templates.get(RAG_TEMPLATE)
    for example, (_, _, text) in zip(data.examples, FACTS.values(), strict=True):
        assert example.golden is True
        [(role, content)] = example.prompt  # the built-in RAG template: one user message, no system
        assert role == "user" and content.startswith(template.user.split("{context}")[0])
        assert example.question in content
        assert text in content  # the golden chunk's sentence
        assert sum(t in content for _, _, t in FACTS.values()) == 2  # two sources: golden and a distractor
        assert example.messages()[-1] == {"role": "assistant", "content": example.answer}


def test_a_share_of_examples_leave_the_answer_chunk_out(store: Store, facts_kb: str, tmp_path: Path) -> None:
    settings = modes.JointSettings(facts_kb, top_k=2, without_golden=0.5)
    data = modes.joint_examples(store, TemplateLibrary(tmp_path / "t"), PAIRS, settings)
    without = [e for e in data.examples if e.golden is False]
    assert len(without) == 3 == data.without_golden
    for example in without:
        fact = next(text for q, _, text in FACTS.values() if q == example.question)
        assert fact not in context_of(example)
        assert not modes.holds(context_of(example), Pair(example.question, example.answer))
    again = modes.joint_examples(store, TemplateLibrary(tmp_path / "t"), PAIRS, settings)
    assert again == data  # seeded: the same examples every time


def test_the_answer_chunk_is_put_in_when_retrieval_misses_it(store: Store, facts_kb: str, tmp_path: Path) -> None:
    # Asked in the festival document's words, top-1 retrieval finds the festival; the golden chunk (the ferry's) is
    # found by the answer's text and takes the distractor's place.
    pair = Pair("When does the Vantrel glass festival crowd in Oskerby take the boat home?", "At 22:40.")
    [hit] = store.search(facts_kb, pair.question, k=1)
    assert hit.filename == "festival.txt"
    settings = modes.JointSettings(facts_kb, top_k=1, without_golden=0.0)
    data = modes.joint_examples(store, TemplateLibrary(tmp_path / "t"), [pair], settings)
    [example] = data.examples
    assert example.golden is True and data.golden_retrieved == 0
    assert FACTS["ferry.txt"][2] in context_of(example) and "Oskerby with furnaces" not in context_of(example)


def test_an_answer_no_chunk_holds_is_rendered_as_retrieved_and_counted(
    store: Store, facts_kb: str, tmp_path: Path
) -> None:
    pair = Pair("What is the Pellory bakery's phone number?", "0171 555 0199.")
    data = modes.joint_examples(store, TemplateLibrary(tmp_path / "t"), [pair], modes.JointSettings(facts_kb))
    assert data.golden_unfound == 1 and data.examples[0].golden is None


def test_evidence_sentence_finds_the_chunk_when_the_answer_is_reworded(store: Store, facts_kb: str) -> None:
    chunks = modes.all_chunks(store, facts_kb)
    reworded = Pair("Who made the drossel valve?", "Its inventor was H. Tamsworth")
    assert modes.golden_chunk(reworded, chunks) is None
    with_evidence = Pair(reworded.question, reworded.answer, evidence="was invented by Hedda Tamsworth in 1871.")
    golden = modes.golden_chunk(with_evidence, chunks)
    assert golden is not None and golden.filename == "valve.txt"


@pytest.mark.parametrize(("full_sentence", "learned"), [(True, FACTS["ferry.txt"][2]), (False, "At 22:40.")])
def test_a_drawn_pair_teaches_its_whole_sentence_unless_told_otherwise(
    store: Store, facts_kb: str, tmp_path: Path, full_sentence: bool, learned: str
) -> None:
    drawn = Pair("When does the last Kesterby ferry leave?", "At 22:40.", evidence=FACTS["ferry.txt"][2])
    settings = modes.JointSettings(facts_kb, without_golden=0.0, full_sentence=full_sentence)
    data = modes.joint_examples(store, TemplateLibrary(tmp_path / "t"), [drawn, PAIRS[0]], settings)
    assert [e.answer for e in data.examples] == [learned, PAIRS[0].answer]  # a pair without evidence keeps its own


def test_joint_trains_drawn_pairs_for_fewer_epochs_than_the_users_own_facts() -> None:
    own = [Pair("Who founded it?", "Ilse Marrow"), Pair("How many staff?", "214")]
    drawn = [Pair("How often is it checked?", "every six months", evidence="It is checked every six months.")] * 2
    assert not modes.drawn(own) and modes.drawn(drawn) and not modes.drawn(drawn[:1] + own)  # most of them, or not
    assert modes.train_defaults("joint").epochs == modes.JOINT_EPOCHS == 3
    one = modes.train_defaults("joint", drawn_pairs=True)
    assert one.epochs == modes.JOINT_EPOCHS_DRAWN == 1 and one.replay_passes == 1  # the replay follows the epochs
    assert modes.train_defaults("staged", drawn_pairs=True).epochs == 3  # measured for Joint only
    assert modes.train_defaults("ft_then_rag", drawn_pairs=True) == TrainSettings()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top_k": 0}, "top-k of at least 1"),
        ({"without_golden": 1.0}, r"must be in \[0, 1\)"),
        ({"template": "Plain question"}, "needs a RAG template"),
    ],
)
def test_bad_joint_settings_are_refused(
    store: Store, facts_kb: str, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    joint = modes.JointSettings(facts_kb, **change)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match=message):
        modes.joint_examples(store, TemplateLibrary(tmp_path / "t"), PAIRS, joint)


def test_joint_request_records_the_mode_and_makes_room_for_rag_prompts(
    store: Store, facts_kb: str, tmp_path: Path
) -> None:
    request = TrainRequest("facts-joint", "facts", tuple(PAIRS), bundled_gguf(), "SmolLM2")
    joint = modes.JointSettings(facts_kb, without_golden=0.2)
    made = modes.joint_request(store, TemplateLibrary(tmp_path / "t"), request, joint)
    assert made.settings.max_length == modes.JOINT_MAX_LENGTH
    assert made.mode == {
        "name": "joint", "kb": facts_kb, "template": RAG_TEMPLATE, "template_version": 1, "top_k": 2,
        "without_golden": 0.2, "full_sentence": True, "examples": 6, "golden_retrieved": 6, "golden_unfound": 0,
    }  # fmt: skip
    train, validation = made.split()
    assert len(train) + len(validation) == 6 and all(isinstance(e, Rendered) for e in train + validation)
    plain_train, plain_validation = request.split()
    assert [e.question for e in validation] == [p.question for p in plain_validation]


def test_rendered_examples_follow_their_pairs_and_are_written_as_chat_rows(tmp_path: Path) -> None:
    examples = [Rendered.of(p.question, p.answer, [{"role": "user", "content": f"ctx\n{p.question}"}]) for p in PAIRS]
    train, validation = split_like(examples, PAIRS[:2])
    assert [e.question for e in validation] == [p.question for p in PAIRS[:2]] and len(train) == 4
    write_examples(tmp_path / "train.jsonl", train)
    parsed = parse_upload("train.jsonl", (tmp_path / "train.jsonl").read_bytes())
    assert not parsed.issues
    assert [(p.question, p.answer) for p in parsed.pairs] == [(f"ctx\n{e.question}", e.answer) for e in train]


def test_a_manifest_without_a_mode_still_loads_and_one_with_a_mode_reads_back(data_dir: Path) -> None:
    old = publish(data_dir, "old-1")
    assert "mode" not in old.manifest.as_json()
    mode = {"name": "joint", "kb": "brackenridge", "top_k": 2, "without_golden": 0.2, "examples": 40}
    new = publish(data_dir, "new-1", mode=mode)
    assert new.manifest.as_json() == MANIFEST | {"name": "new-1", "mode": mode}
    assert [a.name for a in adapters.list_adapters(data_dir)] == ["new-1", "old-1"]


def test_a_mode_with_an_unknown_key_is_refused(data_dir: Path) -> None:
    with pytest.raises(AdapterError, match="mode.colour: Extra inputs are not permitted"):
        publish(data_dir, mode={"name": "joint", "colour": "teal"})


QUICK = TrainSettings(max_steps=2, batch_size=2, validation_fraction=0.0, max_length=modes.JOINT_MAX_LENGTH, replay=0)


@pytest.mark.slow
def test_joint_training_trains_on_rendered_prompts_and_records_its_mode(
    store: Store, facts_kb: str, data_dir: Path
) -> None:
    templates = TemplateLibrary(data_dir / "templates")
    request = TrainRequest("facts-joint", "facts", tuple(PAIRS[:3]), bundled_gguf(), "SmolLM2", QUICK)
    request = modes.joint_request(store, templates, request, modes.JointSettings(facts_kb, without_golden=0.34))
    adapter = run_training(data_dir, request)
    mode = adapter.manifest.mode
    assert mode is not None and mode.name == "joint" and mode.examples == 3
    rows = [json.loads(line) for line in (adapter.folder / "train.jsonl").read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in rows] == [p.answer for p in PAIRS[:3]]
    head = templates.get(RAG_TEMPLATE).user.split("{context}")[0]
    assert all(head in r["messages"][-2]["content"] for r in rows)  # the RAG prompt, not FT's
    assert adapter.manifest.parity is not None and "leading tokens agree" in adapter.manifest.parity.summary


@pytest.mark.slow
def test_encoded_rendered_example_is_its_own_prompt_then_the_answer_and_only_the_answer_is_learned() -> None:
    _, tokenizer = trainer.load_base(bundled_gguf())
    prompt_text = "Text:\nThe lighthouse is teal.\n\nQuestion: What colour is it?"
    example = Rendered.of("What colour is it?", "Teal.", [{"role": "user", "content": prompt_text}])
    encoded = encoding.encode(tokenizer, example, system="ignored for rendered prompts")
    prompt = encoding.prompt_ids(tokenizer, example.prompt_messages())
    assert encoded.input_ids[: len(prompt)] == prompt
    assert encoded.labels[: len(prompt)] == [encoding.IGNORE] * len(prompt)
    learned = [t for t in encoded.labels if t != encoding.IGNORE]
    assert tokenizer.decode(learned[:-1]) == "Teal." and learned[-1] == encoding.end_of_turn(tokenizer)


def test_each_mode_gets_an_ft_rag_column_with_its_newest_adapter(data_dir: Path, settings: Settings) -> None:
    from core.models import embedded_models

    base = {"name": "SmolLM2-135M-Instruct", "file": bundled_gguf().name}
    for name, mode, created in [
        ("old-plain", None, "2026-11-20T10:00:00+00:00"),
        ("joint-1", {"name": "joint"}, "2026-11-21T10:00:00+00:00"),
        ("joint-2", {"name": "joint", "kb": "kb"}, "2026-11-22T10:00:00+00:00"),
        ("staged-1", {"name": "staged"}, "2026-11-23T10:00:00+00:00"),
    ]:
        publish(data_dir, name, base=base, created=created, **({"mode": mode} if mode else {}))
    columns = modes.mode_strategies(data_dir, embedded_models(settings), "kb")
    assert [(s.name, s.model.rsplit("+", 1)[-1]) for s in columns] == [
        ("FT+RAG · FT then RAG", "old-plain"),
        ("FT+RAG · Joint", "joint-2"),
        ("FT+RAG · Staged", "staged-1"),
    ]
    assert all(s.retrieval and s.kb == "kb" and s.template == RAG_TEMPLATE for s in columns)
