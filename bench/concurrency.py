"""Several sessions on one process: 4 asking the embedded model while a 5th runs an evaluation.

Run: .venv/bin/python bench/concurrency.py [--questions 4] [--max-tokens 48]

Each session is a thread with its own `Runtime` over the objects Streamlit shares between sessions
(`st.cache_resource`): one `EmbeddedEngine` (the llama.cpp model and its lock), one template library,
one records file. The sessions ask distinct sample questions with the PE strategy (greedy), the
evaluation session runs `run_evaluation` over other sample questions. Checks, then prints:
- everything completes, without an error;
- answers never mix: each session's streamed pieces join to its Answer, the Answer is for the
  question it asked, and (greedy) its text is the text the same question gets when asked alone;
- throughput (answers/s, answer tokens/s) and p95 latency (ask -> Answer, queueing included),
  concurrent against one session asking the same questions alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure  # noqa: E402
from bench.common import summary as print_summary  # noqa: E402
from core.config import Settings  # noqa: E402
from core.engine import EmbeddedEngine  # noqa: E402
from core.evaluation.questions import sample_set  # noqa: E402
from core.evaluation.runner import EvalRequest, run_evaluation, start_run  # noqa: E402
from core.models import BUNDLED_NAME, ModelCatalog  # noqa: E402
from core.records import Records  # noqa: E402
from core.strategies import PE_TEMPLATE, Answer, Runtime, Strategy  # noqa: E402
from core.template_library import TemplateLibrary  # noqa: E402

MODEL = f"llama.cpp:{BUNDLED_NAME}"
SESSIONS = 4


class Shared:
    """What `ui/resources.py` caches once per process and hands to every session."""

    def __init__(self, data_dir: Path) -> None:
        settings = Settings.from_env(data_dir=data_dir, ollama_host=None)
        self.catalog = ModelCatalog(settings, EmbeddedEngine(), None)
        self.templates = TemplateLibrary(data_dir / "templates")
        self.records = Records(data_dir / "records.sqlite")

    def runtime(self) -> Runtime:
        return Runtime(None, self.templates, self.catalog, self.records)


def ask(runtime: Runtime, strategy: Strategy, question: str) -> tuple[Answer, str, float]:
    """One question as a page asks it: stream, then the Answer; (answer, streamed text, latency)."""
    started = time.perf_counter()
    reply = runtime.run(strategy, question)
    text = "".join(reply)
    return reply.answer(), text, time.perf_counter() - started


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def summary(label: str, answers: list[Answer], latencies: list[float], wall: float) -> tuple[float, float]:
    tokens = sum(a.completion_tokens or 0 for a in answers)
    rate = len(answers) / wall
    print(
        f"  {label}: {len(answers)} answers in {wall:.1f} s: {rate:.2f} answers/s, {tokens / wall:.1f} tokens/s, "
        f"latency median {statistics.median(latencies):.2f} s, p95 {p95(latencies):.2f} s"
    )
    return rate, p95(latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=4, help="questions per asking session")
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    questions = list(sample_set().questions)
    per_session = [
        [q.question for q in questions[s * args.questions : (s + 1) * args.questions]] for s in range(SESSIONS)
    ]
    evaluated = questions[SESSIONS * args.questions : SESSIONS * args.questions + args.questions]
    strategy = Strategy("PE", MODEL, PE_TEMPLATE, max_tokens=args.max_tokens)

    with tempfile.TemporaryDirectory() as tmp:
        shared = Shared(Path(tmp))
        shared.catalog.engine.get(shared.catalog.info(MODEL))  # loaded once, as the app does at first use

        alone: dict[str, Answer] = {}
        latencies: list[float] = []
        started = time.perf_counter()
        runtime = shared.runtime()
        for question in [q for qs in per_session for q in qs]:
            answer, _, latency = ask(runtime, strategy, question)
            alone[question] = answer
            latencies.append(latency)
        solo_wall = time.perf_counter() - started

        results: dict[int, list[tuple[str, Answer, str, float]]] = {s: [] for s in range(SESSIONS)}

        def session(s: int) -> None:
            runtime = shared.runtime()
            for question in per_session[s]:
                answer, streamed, latency = ask(runtime, strategy, question)
                results[s].append((question, answer, streamed, latency))

        eval_runtime = shared.runtime()
        request = EvalRequest("concurrency", "sample", tuple(evaluated), (strategy,))
        run_id = start_run(eval_runtime, request)
        status: list[str] = []
        threads = [threading.Thread(target=session, args=(s,)) for s in range(SESSIONS)]
        threads.append(threading.Thread(target=lambda: status.append(run_evaluation(eval_runtime, run_id))))
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent_wall = time.perf_counter() - started

        asked = [r for rs in results.values() for r in rs]
        assert len(asked) == SESSIONS * args.questions, "a session did not finish"
        assert status == ["done"], f"the evaluation ended {status}"
        cells = shared.records.run_answers(run_id)
        assert len(cells) == len(evaluated), "the evaluation did not store every answer"
        for question, answer, streamed, _ in asked:
            assert answer.error is None, answer.error
            assert answer.question == question and question in answer.prompt, "an answer for another question"
            assert streamed == answer.text, "streamed pieces from another session"
            assert answer.text == alone[question].text, f"differs from the answer alone: {question}"

        print(
            f"{SESSIONS} sessions x {args.questions} questions on {BUNDLED_NAME} (max {args.max_tokens} tokens, greedy)"
            f" while a 5th evaluates {len(evaluated)} questions; {len(asked)} answers match their solo runs:"
        )
        solo_rate, solo_p95 = summary("one session alone   ", list(alone.values()), latencies, solo_wall)
        conc_rate, conc_p95 = summary(
            "4 sessions + eval   ", [a for _, a, _, _ in asked], [lat for *_, lat in asked], concurrent_wall
        )
        total_rate = (len(asked) + len(cells)) / concurrent_wall
        print(f"  with the evaluation's {len(cells)} answers: {total_rate:.2f} answers/s in all")
        print(
            f"  ratios concurrent/alone: throughput {total_rate / solo_rate:.2f}, p95 latency {conc_p95 / solo_p95:.2f}"
        )
        print_summary(Figure("concurrency.throughput_ratio", total_rate / solo_rate, ">=", 0.9))


if __name__ == "__main__":
    main()
