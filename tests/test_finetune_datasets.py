from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from core.errors import DatasetError, DatasetExistsError
from core.finetune import datasets
from core.finetune.datasets import Correction, Pair, RowIssue
from core.finetune.generate import sample_pairs


def jsonl(*rows: object) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


GOOD = {"question": "Who founded it?", "answer": "Ilse Marrow."}


@pytest.mark.parametrize(
    ("filename", "data", "issue"),
    [
        ("d.jsonl", jsonl({"answer": "x"}), RowIssue(1, "question", "is missing")),
        ("d.jsonl", jsonl({"question": "q?"}), RowIssue(1, "answer", "is missing")),
        ("d.jsonl", jsonl({"question": "q?", "answer": "   "}), RowIssue(1, "answer", "is empty")),
        ("d.jsonl", jsonl({"question": "q?", "answer": 42}), RowIssue(1, "answer", "must be text, not int")),
        ("d.jsonl", jsonl(GOOD, "{not json"),
         RowIssue(2, "", "is not valid JSON (Expecting property name enclosed in double quotes at column 2)")),
        ("d.jsonl", jsonl(GOOD, "[1, 2]"), RowIssue(2, "", "must be a JSON object")),
        ("d.jsonl", jsonl(GOOD, GOOD), RowIssue(2, "question", "repeats row 1")),
        ("d.jsonl", jsonl(GOOD, {"question": " who  FOUNDED it? ", "answer": "Tomasz."}),
         RowIssue(2, "question", "asks the same question as row 1 with another answer; keep the right one")),
        ("d.jsonl", jsonl({"messages": [{"role": "user", "content": "q?"}]}),
         RowIssue(1, "messages", "roles are ['user']; expected an optional system message, then one user and "
                                 "one assistant message")),
        ("d.jsonl", jsonl({"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": ""}]}),
         RowIssue(1, "messages[assistant]", "is empty")),
        ("d.jsonl", jsonl({"messages": "hello"}), RowIssue(1, "messages", "must be a list of {role, content} objects")),
        ("d.csv", b"question,answer\nq1?,a1\nq2?,\n", RowIssue(3, "answer", "is empty")),
    ],
)  # fmt: skip
def test_bad_rows_are_named_by_row_and_field_and_the_good_rows_kept(
    filename: str, data: bytes, issue: RowIssue
) -> None:
    parsed = datasets.parse_upload(filename, data)
    assert parsed.issues == [issue]
    assert all(p.question and p.answer for p in parsed.pairs)
    assert len(parsed.pairs) == parsed.rows - 1


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("d.jsonl", "question,answer\nQuel café ?,Très bon\n".encode("latin-1"), "not UTF-8 text (bad byte at line 2)"),
        ("d.jsonl", b"  \n", "is empty"),
        ("d.txt", jsonl(GOOD), "upload a .jsonl or .csv file"),
        ("d.csv", b"prompt,completion\nq,a\n", "no 'question' or 'answer' column"),
        ("d.csv", b"Question,reply\nq,a\n", "no 'answer' column"),
    ],
)
def test_unusable_files_are_refused_whole_with_what_to_do(filename: str, data: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        datasets.parse_upload(filename, data)


def test_every_accepted_shape_gives_the_same_pairs() -> None:
    system = "Answer briefly."
    as_messages = jsonl(
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "Who founded it?"},
                {"role": "assistant", "content": "Ilse Marrow."},
            ]
        }
    )
    as_qa = jsonl(GOOD | {"system": system})
    as_csv = '\ufeffQuestion,Answer,System\n"Who founded it?",Ilse Marrow.,Answer briefly.\n'.encode()
    results = [
        datasets.parse_upload(n, d) for n, d in (("a.jsonl", as_messages), ("b.jsonl", as_qa), ("c.csv", as_csv))
    ]
    assert [r.pairs for r in results] == [[Pair("Who founded it?", "Ilse Marrow.", system)]] * 3
    assert all(not r.issues for r in results)


def test_saved_dataset_round_trips_and_its_version_is_its_content(data_dir: Path) -> None:
    folder = data_dir / "datasets"
    pairs = sample_pairs()
    datasets.save_pairs(folder, "facts", pairs)
    loaded = datasets.load_pairs(folder, "facts")
    assert loaded.pairs == pairs and not loaded.issues
    assert datasets.content_hash(loaded.pairs) == datasets.content_hash(pairs)
    assert datasets.content_hash(pairs[1:]) != datasets.content_hash(pairs)
    assert datasets.list_datasets(folder) == ["facts"]
    with pytest.raises(DatasetError, match="empty"):
        datasets.save_pairs(folder, "facts", [])
    with pytest.raises(DatasetError, match="not a valid dataset name"):
        datasets.save_pairs(folder, "../escape", pairs)


def test_compare_corrections_are_a_dataset_like_any_other(data_dir: Path) -> None:
    folder = data_dir / "datasets"
    datasets.add_correction(folder, "corrections", Correction("How many staff?", "214 people.", "12", "RAG", "m"))
    datasets.add_correction(folder, "corrections", Correction("Founded when?", "In 2011.", "1900", "PE", "m"))
    parsed = datasets.load_pairs(folder, "corrections")
    assert parsed.pairs == [Pair("How many staff?", "214 people."), Pair("Founded when?", "In 2011.")]


def test_rows_longer_than_the_training_length_are_named() -> None:
    pairs = [Pair("q?", "short"), Pair("q2?", "long " * 50)]
    issues = datasets.check_lengths(pairs, lambda p: len(p.answer.split()) + 10, 40)
    assert issues == [RowIssue(2, "answer", "is 60 tokens with the chat template, over the maximum length 40")]


def test_split_is_stable_when_rows_are_added_and_tiny_sets_keep_every_pair() -> None:
    pairs = sample_pairs()
    train, val = datasets.split(pairs, 0.1)
    assert len(val) == 4 and len(train) == 36 and not set(train) & set(val)
    train2, val2 = datasets.split(pairs[:-1], 0.1)
    assert set(val2) <= set(val) | set(pairs[:-1])  # held-out pairs follow their question's hash
    assert len(set(val) & set(val2)) >= 3
    assert datasets.split(pairs[:4], 0.2) == (pairs[:4], [])


def test_saving_over_a_dataset_with_other_pairs_asks_first(data_dir: Path) -> None:
    folder = data_dir / "datasets"
    pairs = sample_pairs()
    assert not datasets.dataset_exists(folder, "facts")
    datasets.save_pairs(folder, "facts", pairs)
    assert datasets.dataset_exists(folder, "facts")
    assert not datasets.save_would_replace(folder, "facts", pairs)
    datasets.save_pairs(folder, "facts", pairs)  # the same pairs again: nothing to ask
    assert datasets.save_would_replace(folder, "facts", pairs[:3])
    with pytest.raises(DatasetExistsError, match="already exists with other pairs; confirm"):
        datasets.save_pairs(folder, "facts", pairs[:3])
    assert datasets.load_pairs(folder, "facts").pairs == pairs
    datasets.save_pairs(folder, "facts", pairs[:3], replace=True)
    assert datasets.load_pairs(folder, "facts").pairs == pairs[:3]


def test_a_correction_appended_during_a_save_is_not_lost(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compare appends while the Fine-tune page replaces the file: the row lands in the new file."""
    folder = data_dir / "datasets"
    datasets.add_correction(folder, "corrections", Correction("Founded when?", "In 2011.", "1900", "PE", "m"))
    real_write = datasets.atomic_write_text
    appended = threading.Event()

    def append() -> None:
        datasets.add_correction(folder, "corrections", Correction("How many staff?", "214 people.", "12", "RAG", "m"))
        appended.set()

    def slow_write(path: Path, text: str, **kw: object) -> bool:
        worker = threading.Thread(target=append)
        worker.start()  # another session appends while this one is mid-save
        appended.wait(0.5)  # without the lock the append lands in the old file now
        result = real_write(path, text)
        threads.append(worker)
        return result

    threads: list[threading.Thread] = []
    monkeypatch.setattr(datasets, "atomic_write_text", slow_write)
    datasets.save_pairs(folder, "corrections", [Pair("Who founded it?", "Ilse Marrow.")], replace=True)
    threads[0].join()
    questions = [p.question for p in datasets.load_pairs(folder, "corrections").pairs]
    assert questions == ["Who founded it?", "How many staff?"]
