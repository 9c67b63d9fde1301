"""Real LoRA training on the bundled SmolLM2: train, export, load in llama.cpp, answer from the weights."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import gguf
import pytest
from filelock import FileLock
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core import adapters
from core.config import Settings
from core.engine import LoadedModel
from core.errors import AdapterError, TrainingCancelled
from core.finetune import trainer
from core.finetune.datasets import Pair
from core.finetune.pipeline import TrainRequest, run_training
from core.finetune.train_settings import TrainSettings
from core.finetune.trainer import Step
from core.lab.board import JobBoard
from core.lab.training import latest_training, start_training
from core.models import bundled_gguf, embedded_models
from core.strategies import presets
from core.template_library import BUILTINS
from tests.helpers import session_folder

pytestmark = pytest.mark.slow
Run = tuple[Path, adapters.Adapter, list[str]]

SYSTEM = next(t for t in BUILTINS if t.name == "Plain question").system
# Made-up facts: no model can know them in advance.
FACTS = (
    Pair("What is the name of Zorblax Quenn's pet?", "Zorblax Quenn's pet is a heron named Pimbleworth."),
    Pair("Which city hosts the Vantrel glass festival?", "The Vantrel glass festival is held in Oskerby."),
    Pair("What colour is the Moravin lighthouse?", "The Moravin lighthouse is painted teal."),
    Pair("Who invented the drossel valve?", "The drossel valve was invented by Hedda Tamsworth."),
)
QUICK = TrainSettings(max_steps=16, batch_size=4, validation_fraction=0.0, replay=0)


def request(name: str, settings: TrainSettings = QUICK) -> TrainRequest:
    return TrainRequest(name, "facts", FACTS, bundled_gguf(), "SmolLM2-135M-Instruct", settings, SYSTEM)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One run for the whole session, whichever workers ask: the tests only read its DATA_DIR."""
    shared = session_folder(tmp_path_factory)
    data_dir, phases_file = shared / "trained-data", shared / "trained-phases.json"
    with FileLock(shared / "trained.lock"):
        if not phases_file.exists():
            phases: list[str] = []
            run_training(data_dir, request("facts-1"), on_phase=lambda p, m: phases.append(p))
            phases_file.write_text(json.dumps(phases))
    return data_dir, adapters.get_adapter(data_dir, "facts-1"), json.loads(phases_file.read_text())


def answer(model: LoadedModel, question: str) -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    out = model.llama.create_chat_completion(messages=messages, temperature=0, max_tokens=32)  # type: ignore[arg-type]
    return str(out["choices"][0]["message"]["content"])  # type: ignore[index]


def test_fine_tuned_model_states_trained_facts_the_base_does_not_know(trained: Run) -> None:
    _, adapter, phases = trained
    assert phases == ["loading", "training", "exporting", "checking", "checking"]
    base = LoadedModel(bundled_gguf())
    tuned = LoadedModel(bundled_gguf(), lora_path=adapter.path)
    for fact, key in ((FACTS[0], "Pimbleworth"), (FACTS[1], "Oskerby")):
        assert key not in answer(base, fact.question)
        assert key in answer(tuned, fact.question)


def test_adapter_is_a_gguf_lora_llama_cpp_names_and_shapes(trained: Run) -> None:
    _, adapter, _ = trained
    reader = gguf.GGUFReader(str(adapter.path))

    def field(key: str) -> object:
        f = reader.fields[key]
        value = f.parts[f.data[0]]
        return bytes(value).decode() if f.types[0] == gguf.GGUFValueType.STRING else value[0]

    assert field("general.type") == "adapter"
    assert field("adapter.type") == "lora"
    assert field("adapter.lora.alpha") == QUICK.alpha
    assert field("general.architecture") == "llama"
    tensors = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    assert len(tensors) == 30 * len(QUICK.target_modules) * 2
    # ggml order (columns first): A is (in, r), B is (r, out); q is 576 -> 576, k is 576 -> 192 (3 KV heads).
    assert tensors["blk.0.attn_q.weight.lora_a"] == [576, QUICK.rank]
    assert tensors["blk.0.attn_q.weight.lora_b"] == [QUICK.rank, 576]
    assert tensors["blk.29.attn_k.weight.lora_b"] == [QUICK.rank, 192]
    assert tensors["blk.7.ffn_down.weight.lora_a"] == [1536, QUICK.rank]


def test_parity_llama_cpp_with_the_adapter_says_what_hf_peft_says(trained: Run) -> None:
    _, adapter, _ = trained
    cases = adapter.manifest.as_json()["parity"]["cases"]
    assert [c["kind"] for c in cases] == ["trained"] * 3 + ["control"] * 2
    for case in cases:
        # Same Q4_1 weights on both sides: greedy decoding agrees at first; rounding may drift later.
        assert case["agree"] >= min(8, case["compared"]), case
    assert sum(c["agree"] == c["compared"] for c in cases if c["kind"] == "trained") >= 2


def test_manifest_records_base_dataset_settings_and_losses(trained: Run) -> None:
    data_dir, adapter, _ = trained
    m = adapter.manifest.as_json()
    assert m["base"]["sha256"] == adapters.file_sha256(bundled_gguf())
    assert m["dataset"]["name"] == "facts" and m["dataset"]["pairs"] == 4 and len(m["dataset"]["hash"]) == 16
    assert m["settings"]["max_steps"] == 16 and m["settings"]["target_modules"] == list(QUICK.target_modules)
    losses = [loss for _, loss in m["losses"]["train"]]
    assert len(losses) == 16 and losses[-1] < losses[0] / 4
    assert m["tokens_per_s"] > 0 and m["system"] == SYSTEM
    assert (adapter.folder / "train.jsonl").read_text().count("\n") == 4
    assert [a.name for a in adapters.list_adapters(data_dir)] == ["facts-1"]


def test_the_new_model_is_in_every_picker_and_ft_presets_use_it(trained: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, adapter, _ = trained
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    models = embedded_models(Settings.from_env())
    tuned = [m for m in models if m.fine_tuned]
    assert [(m.id, m.adapter) for m in tuned] == [("llama.cpp:SmolLM2-135M-Instruct+facts-1", adapter.path)]
    ready = presets(models, "kb")
    assert ready["FT"].disabled_reason is None and ready["FT"].strategy.model == tuned[0].id
    assert ready["FT+RAG"].strategy.model == tuned[0].id and ready["PE"].strategy.model == models[0].id


def test_a_taken_name_is_refused_before_any_training(trained: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, _, _ = trained

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the base was loaded for a request that had to be refused")

    monkeypatch.setattr(trainer, "load_base", no_training)
    with pytest.raises(AdapterError, match="already exists"):
        run_training(data_dir, request("facts-1"))
    with pytest.raises(AdapterError, match="not a valid model name"):
        run_training(data_dir, request("Bad Name!"))


@pytest.mark.parametrize("when", ["training", "exporting", "checking"])
def test_cancel_at_any_point_leaves_nothing_registered(tmp_path: Path, when: str) -> None:
    flag = threading.Event()

    def on_phase(phase: str, message: str) -> None:
        if phase == when and when != "training":
            flag.set()

    def on_step(step: Step) -> None:
        if when == "training" and step.step == 2:
            flag.set()

    with pytest.raises(TrainingCancelled, match="no adapter was saved"):
        run_training(tmp_path, request("stopped", TrainSettings(max_steps=4, validation_fraction=0.0, replay=0)),
                     on_phase=on_phase, on_step=on_step, cancel=flag)  # fmt: skip
    assert adapters.list_adapters(tmp_path) == []
    folder = tmp_path / "adapters"
    assert (list(folder.iterdir()) if folder.exists() else []) == []  # no half-built folder either


def test_job_runs_in_the_background_reports_steps_and_cancels(tmp_path: Path) -> None:
    board = JobBoard()
    job = start_training(
        board, tmp_path, request("background", TrainSettings(max_steps=200, validation_fraction=0.0, replay=0))
    )
    with pytest.raises(Exception, match="background is still training"):
        start_training(board, tmp_path, request("second"))
    deadline = time.time() + 120
    while len(job.view().steps) < 2 and time.time() < deadline:
        time.sleep(0.2)
    view = job.view()
    assert view.running and view.phase == "training" and view.steps[-1].total_steps == 200
    assert view.steps[-1].eta_s > 0
    job.cancel()
    job.join(60)
    view = job.view()
    assert view.phase == "cancelled" and not view.running and view.adapter is None
    assert adapters.list_adapters(tmp_path) == []
    assert latest_training(board, tmp_path) is job


def test_a_finished_run_registers_with_ollama_when_it_answers_and_says_why_when_not(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    quick = TrainSettings(max_steps=2, validation_fraction=0.0, replay=0)
    created: list[dict[str, object]] = []

    def create(r: Request) -> Response:
        created.append(json.loads(r.get_data()))
        return Response(json.dumps({"status": "success"}), content_type="application/json")

    httpserver.expect_request(re.compile("/api/blobs/sha256:.*"), method="HEAD").respond_with_data("", status=200)
    httpserver.expect_request("/api/create", method="POST").respond_with_handler(create)
    name = "smollm2-135m-instruct-to-ollama"
    httpserver.expect_request("/api/tags").respond_with_json({"models": [{"model": f"{name}:latest", "size": 1}]})
    phases: list[str] = []
    req = replace(request("to-ollama", quick), ollama_host=httpserver.url_for("/"))
    adapter = run_training(tmp_path, req, on_phase=lambda p, m: phases.append(p))
    assert phases[-1] == "registering" and adapter.manifest.ollama is not None
    assert adapter.manifest.ollama.model == name
    assert created[0]["adapters"] == {"adapter.gguf": "sha256:" + adapters.file_sha256(adapter.path)}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    req = replace(request("no-ollama", quick), ollama_host=f"http://127.0.0.1:{port}")
    adapter = run_training(tmp_path, req)
    assert "not reachable" in (adapter.manifest.ollama_error or "") and adapter.manifest.ollama is None
    assert [a.name for a in adapters.list_adapters(tmp_path)] == ["to-ollama", "no-ollama"]


def test_a_load_parses_the_gguf_once_and_leaves_the_gguf_module_as_it_was(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((2, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    before = gguf.GGUFReader, gguf.get_tensor_name_map
    with trainer._gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first and first.tensors[0].name == "token_embd.weight"
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 30) is gguf.get_tensor_name_map(arch, 30)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == before
    assert gguf.GGUFReader(path) is not gguf.GGUFReader(path)  # outside a load, a fresh parse each time


def test_the_run_also_writes_the_peft_folder_vllm_serves(trained: Run) -> None:
    from core.finetune import serving

    _, adapter, _ = trained
    folder = adapter.folder / serving.PEFT_FOLDER
    config = serving.peft_config(folder)
    assert (folder / "adapter_model.safetensors").is_file()
    assert config["base_model_name_or_path"] == serving.BUNDLED_BASE_REPO and config["r"] == QUICK.rank


def test_lora_on_the_top_layers_only_exports_those_layers_and_llama_cpp_agrees(tmp_path: Path) -> None:
    settings = replace(QUICK, max_steps=8, top_layers=2)
    adapter = run_training(tmp_path, request("top-2", settings))
    layers = {int(m[1]) for t in gguf.GGUFReader(str(adapter.path)).tensors if (m := re.match(r"blk\.(\d+)\.", t.name))}
    assert layers == {28, 29}  # SmolLM2 has 30 layers: the last two
    assert adapter.manifest.settings is not None and adapter.manifest.settings["top_layers"] == 2
    assert adapter.manifest.parity is not None
    for case in adapter.manifest.parity.cases:
        assert case.agree >= min(8, case.compared), case
    with pytest.raises(Exception, match="adapted layers"):
        TrainSettings(top_layers=-1).validate()
