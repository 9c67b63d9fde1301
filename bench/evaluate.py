"""Evaluation benchmark: the sample set through PE, RAG, FT and FT+RAG, and the runner's overhead.

1. Per strategy: correctness (the headline check), token F1, hit@1, hit@k and MRR against the
   expected source, median and p95 answer time, as the Evaluate page reports them.
2. Runner overhead: the same cells asked again through plain `Runtime.run` one after another;
   ratio = runner wall time / sum of the plain run times (target <= 1.10). The runner also scores
   every answer (MiniLM similarity and support) and stores it in records.sqlite. The two sides
   alternate in blocks of a few questions, so a neighbour's load on a shared machine hits both.

FT and FT+RAG need a fine-tuned model: the default adapter is trained on the 40 sample facts
first when DATA_DIR has none (`--no-ft` skips them). `--control` also asks the 40 control
questions of the base and each fine-tuned model and prints forgetting (`--questions 0 --control`:
only that).

Run: .venv/bin/python bench/evaluate.py [--questions 40] [--no-ft] [--control] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, summary  # noqa: E402
from core.config import Settings  # noqa: E402
from core.embeddings import EmbeddingModel, load_bundled  # noqa: E402
from core.engine import EmbeddedEngine  # noqa: E402
from core.evaluation import control  # noqa: E402
from core.evaluation import questions as qs  # noqa: E402
from core.evaluation.report import load_run, summarize  # noqa: E402
from core.evaluation.runner import EvalRequest, run_evaluation, start_run  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.models import ModelCatalog  # noqa: E402
from core.records import Records  # noqa: E402
from core.samples import SAMPLE_KB_NAME, sample_uploads  # noqa: E402
from core.store import Store  # noqa: E402
from core.strategies import FT_TEMPLATE, Runtime, presets  # noqa: E402
from core.template_library import TemplateLibrary  # noqa: E402


def train_default(data_dir: Path) -> None:
    from core.finetune.generate import sample_pairs
    from core.finetune.pipeline import TrainRequest, run_training
    from core.models import bundled_gguf

    system = TemplateLibrary(data_dir / "templates").get(FT_TEMPLATE).system
    started = time.perf_counter()
    request = TrainRequest("sample-facts", "sample-facts", tuple(sample_pairs()), bundled_gguf(),
                           "SmolLM2-135M-Instruct", system=system)  # fmt: skip
    run_training(data_dir, request)
    print(f"trained the default adapter on the 40 sample facts in {time.perf_counter() - started:.0f} s")


def control_run(runtime: Runtime, catalog: ModelCatalog, embedder: EmbeddingModel) -> None:
    columns = control.control_strategies(catalog.available())
    if len(columns) < 2:
        print("control set: no fine-tuned model, nothing to compare")
        return
    run_id = start_run(runtime, EvalRequest("control", qs.CONTROL_SET, qs.control_set().questions, tuple(columns)))
    started = time.perf_counter()
    run_evaluation(runtime, run_id, embedder=embedder.embeddings)
    run = load_run(runtime.records, run_id)
    known = control.base_known(run)
    print(f"control set ({time.perf_counter() - started:.0f} s): the base answers {known} of {len(run.questions)}")
    for model, f in control.forgetting_by_model(run).items():
        print(f"  {model}: keeps {fmt(f.tuned_accuracy, True)} of those {f.kept} (forgetting {fmt(f.drop, True)})")


def fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:.0%}" if pct else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--no-ft", action="store_true")
    parser.add_argument("--control", action="store_true", help="also measure forgetting on the control set")
    parser.add_argument("--block", type=int, default=4, help="questions per alternation of runner and plain runs")
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse a DATA_DIR (its adapters) between runs")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    data_dir = args.data_dir or Path(tmp.name)
    settings = Settings.from_env(data_dir=data_dir, ollama_host=None, qdrant_url=None, qdrant_path=None)
    embedder = load_bundled()
    store = Store.open(settings, embedder)
    if SAMPLE_KB_NAME not in [kb.name for kb in store.list_kbs()]:
        store.create_kb(SAMPLE_KB_NAME, chunk_size=800, chunk_overlap=120)
        ingest(store, SAMPLE_KB_NAME, sample_uploads())
    catalog = ModelCatalog(settings, EmbeddedEngine(), None)
    if not args.no_ft and not any(m.fine_tuned for m in catalog.available()):
        train_default(data_dir)
    runtime = Runtime(store, TemplateLibrary(data_dir / "templates"), catalog, Records(data_dir / "records.sqlite"))
    available = presets(catalog.available(), SAMPLE_KB_NAME)
    names = ["PE", "RAG"] + ([] if args.no_ft else ["FT", "FT+RAG"])
    strategies = tuple(available[n].strategy for n in names)
    questions = qs.sample_set().questions[: args.questions]
    next(iter(runtime.run(strategies[0], "Warm-up: say hello.", save=False)), None)  # load the model, fill caches

    if args.control:
        control_run(runtime, catalog, embedder)
    if not questions:
        return
    runner_s = plain_s = 0.0
    cells = {}
    for start in range(0, len(questions), args.block):
        block = questions[start : start + args.block]
        run_id = start_run(runtime, EvalRequest("bench", qs.SAMPLE_SET, block, strategies))
        t = time.perf_counter()
        run_evaluation(runtime, run_id, embedder=embedder.embeddings)
        runner_s += time.perf_counter() - t
        cells.update(load_run(runtime.records, run_id).cells)
        for q in block:
            for s in strategies:
                t = time.perf_counter()
                if error := runtime.run(s, q.question).answer().error:
                    print(f"plain run error: {error}")
                plain_s += time.perf_counter() - t
        print(f"  {start + len(block)}/{len(questions)} questions: runner {runner_s:.0f} s, plain {plain_s:.0f} s")

    run = load_run(runtime.records, run_id)
    run.request = EvalRequest("bench", qs.SAMPLE_SET, questions, strategies)
    run.cells = cells
    print(f"sample set: {len(questions)} questions x {len(strategies)} strategies = {len(run.cells)} answers")
    header = f"{'strategy':<8} {'correct':>8} {'F1':>5} {'hit@1':>6} {'hit@k':>6} {'MRR':>5} {'p50 s':>6} {'p95 s':>6}"
    print(header)
    for s in summarize(run):
        print(
            f"{s.strategy:<8} {fmt(s.correct, True):>8} {fmt(s.f1):>5} {fmt(s.hit_at_1, True):>6} "
            f"{fmt(s.hit_at_k, True):>6} {fmt(s.mrr):>5} {fmt(s.total_p50):>6} {fmt(s.total_p95):>6}"
        )
    print(
        f"runner {runner_s:.1f} s vs plain Runtime.run sum {plain_s:.1f} s -> overhead ratio "
        f"{runner_s / plain_s:.3f} (target <= 1.10)"
    )
    summary(Figure("evaluate.runner_overhead", runner_s / plain_s, "<=", 1.10))
    store.close()


if __name__ == "__main__":
    main()
