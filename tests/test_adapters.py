"""The adapter registry: manifests are checked strictly; staging leftovers are cleaned."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core import adapters
from core.errors import AdapterError
from core.finetune.modes import mode_of
from core.lab.board import JobBoard
from core.lab.training import latest_training

MANIFEST = {
    "name": "facts-1",
    "created": "2026-11-23T10:00:00+00:00",
    "base": {"name": "SmolLM2-135M-Instruct", "file": "base.gguf", "sha256": "ab" * 32},
    "system": None,
}


def publish(data_dir: Path, name: str = "facts-1", **manifest: object) -> adapters.Adapter:
    stage = adapters.staging(data_dir, name)
    (stage / adapters.ADAPTER_FILE).write_bytes(b"GGUF")
    return adapters.publish(data_dir, stage, name, MANIFEST | {"name": name} | manifest)


def test_a_manifest_reads_back_as_written(data_dir: Path) -> None:
    published = publish(data_dir, losses={"train": [[1, 2.5], [2, 1.0]], "validation": []})
    assert published.manifest.as_json() == MANIFEST | {"losses": {"train": [[1, 2.5], [2, 1.0]], "validation": []}}
    assert adapters.list_adapters(data_dir) == [published]


def test_an_older_manifest_reads_as_typed_fields_and_what_it_lacks_is_none(data_dir: Path) -> None:
    """A manifest from before modes, replay and the merged Ollama route: it loads, read-only."""
    registered = {"host": "http://gpu-box:11434", "model": "smollm2-old-1", "registered": "2026-11-23T11:00:00+00:00"}
    old = publish(data_dir, "old-1", ollama=registered)
    m = adapters.get_adapter(data_dir, "old-1").manifest
    assert (m.name, m.base.file, m.mode, m.replay, m.parity, m.train_seconds) == (
        "old-1", "base.gguf", None, None, None, None
    )  # fmt: skip
    assert m.ollama is not None and (m.ollama.model, m.ollama.route) == ("smollm2-old-1", None)
    assert mode_of(old) == "ft_then_rag"
    with pytest.raises(ValidationError, match="frozen"):
        m.system = "Answer in French."  # type: ignore[misc]
    assert adapters.update_manifest(old, ollama_error="gone").manifest.as_json() == MANIFEST | {
        "name": "old-1", "ollama": registered, "ollama_error": "gone"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"system": 1}, "system: Input should be a valid string"),
        ({"base": {"name": "x", "file": 3}}, "base.file: Input should be a valid string"),
        ({"tensors": "12"}, "tensors: Input should be a valid integer"),
        ({"favourite": True}, "favourite: Extra inputs are not permitted"),
        ({"base": None}, "base"),
    ],
)
def test_a_damaged_manifest_is_refused_and_not_listed(
    data_dir: Path, change: dict[str, object], fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(AdapterError, match="manifest.json is damaged") as info:
        publish(data_dir, **change)
    assert fragment in str(info.value)
    good = publish(data_dir, "facts-2")
    (good.folder / adapters.MANIFEST_FILE).write_text(json.dumps(MANIFEST | change), encoding="utf-8")
    assert adapters.list_adapters(data_dir) == []
    assert "facts-2 is not listed" in caplog.text and fragment in caplog.text


KILLED_MIDWAY = """
import sys
from pathlib import Path
from core import adapters

data_dir = Path(sys.argv[1])
stage = adapters.staging(data_dir, "facts-9")
with (stage / adapters.ADAPTER_FILE).open("wb") as f:
    f.write(b"GGUF half an adapter")
    f.flush()
    print("writing", flush=True)
    sys.stdin.read()  # killed here, mid-export
"""


def test_sigkill_during_export_lists_nothing_and_the_leftover_is_cleaned_at_start(data_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_MIDWAY, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.stdout is not None and child.stdout.readline() == b"writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    mine = adapters.staging(data_dir, "facts-10")  # a live run in this process: not touched
    leftovers = [p.name for p in adapters.root(data_dir).iterdir() if p != mine]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".partial-{child.pid}-facts-9-")
    assert adapters.list_adapters(data_dir) == []  # after a restart: no half adapter listed
    assert latest_training(JobBoard(), data_dir) is None  # the first look at DATA_DIR cleans up
    assert [p for p in adapters.root(data_dir).iterdir()] == [mine]


def test_a_delete_killed_midway_is_finished_at_start_and_the_name_is_free_again(data_dir: Path) -> None:
    published = publish(data_dir)
    trash = adapters.root(data_dir) / ".deleting-facts-1-abc123"
    published.folder.rename(trash)  # killed after the rename, before the files were removed
    assert adapters.clean_leftovers(data_dir) == [trash.name]
    assert not trash.exists()
    adapters.delete_adapter(data_dir, publish(data_dir).name)
    assert list(adapters.root(data_dir).iterdir()) == []


def test_a_model_trained_inside_the_rag_prompt_is_listed_as_reading_context(data_dir: Path) -> None:
    from core.config import Settings
    from core.models import ModelInfo, fine_tuned_models

    publish(data_dir, "plain-1")  # before modes were recorded: plain facts
    publish(data_dir, "facts-2", mode={"name": "ft_then_rag"})
    publish(data_dir, "joint-1", mode={"name": "joint", "kb": "kb"})
    publish(data_dir, "staged-1", mode={"name": "staged", "kb": "kb"})
    base = ModelInfo("llama.cpp:base", "base", "llama.cpp", path=data_dir / "base.gguf")
    listed = {m.label.split(" ")[0]: m.reads_context for m in fine_tuned_models(Settings.from_env(), [base])}
    assert listed == {"base+plain-1": False, "base+facts-2": False, "base+joint-1": True, "base+staged-1": True}
