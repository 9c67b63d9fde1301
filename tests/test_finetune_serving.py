"""A fine-tuned model in the forms vLLM and llama.cpp's server take: the PEFT folder and the command lines."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from core.config import OpenAIServer
from core.finetune import serving
from core.models import bundled_gguf
from core.servers.openai import OpenAIBackend


@pytest.mark.parametrize(("rank", "warned"), [(8, False), (16, False), (320, False), (2, True), (24, True)])
def test_ranks_vllm_cannot_serve_are_said(rank: int, warned: bool) -> None:
    warning = serving.rank_warning(rank)
    assert (warning is not None) == warned
    if warning:
        assert f"rank {rank}" in warning and "1, 8, 16, 32, 64, 128, 256, 320, 512" in warning


@pytest.mark.slow
def test_the_peft_folder_loads_back_with_peft_and_gives_the_trained_models_logits(tmp_path: Path) -> None:
    import torch
    from peft import PeftModel

    from core.finetune import trainer
    from core.finetune.train_settings import TrainSettings
    from core.models import bundled_gguf

    base, tokenizer = trainer.load_base(bundled_gguf())
    settings = TrainSettings(rank=8, alpha=16, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    torch.manual_seed(0)
    model = trainer.lora_model(base, settings)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    folder = serving.write_peft(model, tmp_path / serving.PEFT_FOLDER)

    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert config["r"] == 8 and sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(folder)).eval()
    ids = tokenizer("The Moravin lighthouse is painted", return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model.eval()(ids).logits
        got = loaded(ids).logits
        plain = base(ids).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(plain, expected, atol=1e-3)  # the adapter matters
    trainer.release_base()

    command = serving.vllm_command("facts-1", folder)
    assert command.startswith("vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --enable-lora --max-lora-rank 8 ")
    assert command.endswith(f"--lora-modules facts-1={folder}")


def test_one_click_load_on_a_vllm_server_that_allows_runtime_loading(httpserver: HTTPServer, tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    def load(request):  # type: ignore[no-untyped-def]
        from werkzeug import Response

        body = json.loads(request.data or b"{}")
        if not body:
            return Response('{"detail": [{"msg": "Field required"}]}', status=422, content_type="application/json")
        seen.append(body)
        return Response("Success: LoRA adapter 'facts-1' added successfully.", status=200)

    httpserver.expect_request("/v1/load_lora_adapter", method="POST").respond_with_handler(load)
    backend = OpenAIBackend(OpenAIServer("vllm", httpserver.url_for("/v1")))
    assert backend.can_load_adapters()
    request = serving.load_request("facts-1", tmp_path / "peft")
    assert "added successfully" in backend.load_adapter(**{"name": request["lora_name"], "path": request["lora_path"]})
    assert seen == [{"lora_name": "facts-1", "lora_path": str(tmp_path / "peft")}]


def test_a_server_without_runtime_loading_is_told_apart(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/load_lora_adapter").respond_with_data("Not Found", status=404)
    assert not OpenAIBackend(OpenAIServer("vllm", httpserver.url_for("/v1"))).can_load_adapters()


def test_the_llama_server_line_names_base_and_adapter(tmp_path: Path) -> None:
    line = serving.llama_server_command(Path("/m/base.gguf"), tmp_path / "my model" / "adapter.gguf")
    assert line == f"llama-server -m /m/base.gguf --lora '{tmp_path}/my model/adapter.gguf' --port 8080"


@pytest.mark.slow
def test_the_model_card_gives_the_serving_lines_and_loads_the_adapter_into_vllm_in_one_click(
    httpserver: HTTPServer, data_dir: Path
) -> None:
    from werkzeug import Request, Response

    from tests.helpers import open_app
    from tests.test_adapters import publish

    base = {"name": "SmolLM2-135M-Instruct", "file": bundled_gguf().name, "sha256": "ab" * 32}
    published = publish(data_dir, "facts-3", base=base)
    peft = published.folder / serving.PEFT_FOLDER
    peft.mkdir()
    (peft / "adapter_config.json").write_text(json.dumps({"r": 12, "base_model_name_or_path": "org/base"}))
    loaded: list[dict[str, str]] = []

    def load(request: Request) -> Response:
        body = json.loads(request.data or b"{}")
        if not body:
            return Response('{"detail": "lora_name: Field required"}', status=422, content_type="application/json")
        loaded.append(body)
        return Response("Success: LoRA adapter 'facts-3' added successfully.")

    httpserver.expect_request("/v1/models").respond_with_json({"object": "list", "data": [{"id": "org/base"}]})
    httpserver.expect_request("/v1/load_lora_adapter", method="POST").respond_with_handler(load)
    (data_dir / "servers.json").write_text(
        json.dumps({"openai_servers": [{"name": "vllm", "base_url": httpserver.url_for("/v1")}]})
    )
    at = open_app("app_pages/finetune.py")
    code = [c.value for c in at.code]
    serve_here = f"llama-server -m {bundled_gguf()} --lora {published.path} "
    assert any(c.startswith(serve_here) for c in code), code
    assert f"vllm serve org/base --enable-lora --max-lora-rank 16 --lora-modules facts-3={peft}" in code
    assert json.loads(next(c for c in code if c.startswith("{"))) == {"lora_name": "facts-3", "lora_path": str(peft)}
    text = " ".join(c.value for c in at.caption)
    assert "rank 12 runs here" in text and "Pick 8 to serve it there too" in text
    at.button(key="finetune.model.facts-3.serve.vllm").click().run()
    assert loaded == [{"lora_name": "facts-3", "lora_path": str(peft)}]
    assert "listed as `vllm:facts-3`" in at.success[0].value


def test_a_model_card_whose_base_is_gone_says_so_instead_of_a_serving_line(data_dir: Path) -> None:
    from tests.helpers import open_app
    from tests.test_adapters import publish

    publish(data_dir, "gone-1")  # trained on a base.gguf this machine no longer has
    at = open_app("app_pages/finetune.py")
    assert not any(c.value.startswith("llama-server") for c in at.code)
    assert "its base, base.gguf, is not on this machine any more" in " ".join(c.value for c in at.caption)
