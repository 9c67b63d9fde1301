"""The seed's hybrid training modes, each trained with its defaults, measured as FT+RAG on both question sets.

For each question set (the English sample `brackenridge`; the held-out `corvane`), per mode:
- ft_then_rag: a LoRA on the training pairs with the plain FT prompt, served with retrieval;
- joint: the same pairs rendered with the RAG template and their retrieved chunks (golden among
  distractors, `--without-golden` of them without it);
- staged: RAG evaluated on the training questions, a LoRA on its failures (joint-rendered), FT+RAG;
- iterative: the same in rounds until one gains nothing (`--rounds`); its first round is the staged run
  (same data and seed), so with both modes asked one loop reports both.
Printed: FT+RAG correctness on the set's own questions (`core.evaluation.metrics.is_correct`), the
training and evaluation times, and the forgetting on the control set (base vs every adapter in
DATA_DIR, earlier runs' included, with the plain FT template, on the control questions the base
answers right).

Training data, honestly: on brackenridge the product's sample facts (`generate.sample_pairs`, the
set's own questions, as the Fine-tune page offers them); on corvane pairs drawn from its knowledge
base (`generate.pairs_from_kb`), never its held-out questions: for staged and iterative the
failures are found by asking those drawn pairs, and the held-out questions are only measured.

Measured 3 Dec 2026 (2 cores, one run each, SmolLM2, each mode's defaults of that day; forgetting in brackets):
                          brackenridge (40)   corvane (24, held out)   vellacourt (20, held-out PDF, 8 pairs)
  RAG on the base         65%                 83%                      45%
  FT then RAG             62% (7 pts, 99 s)   38% (14 pts, 77 s)       20% (10 pts, 60 s)
  Joint, a fifth without
  the answer's chunk      72% (14, 148 s)     67% (10, 117 s)          40% (3, 92 s)
  Joint, none without
  (the default now)       65% (7)             79% (17)                 50% (7)
  Joint, a fifth without,
  no replay               68% (38, 66 s)      79% (14, 42 s)           55% (7, 16 s)
  Joint, none without,
  no replay               68% (34, 64 s)      75% (28, 46 s)           40% (7, 48 s)
The Debian Reference (`--sets real-en`, 3 Dec, the defaults; 25 pairs drawn from its ~1,000 chunks, 30 questions
written from its pages): RAG on the base 57% (17/30), Joint 47% (14/30), forgetting 10 points, training 148 s.
The joint model copies the excerpt's first sentence: in 19 of the 21 training prompts that hold the answer it is
the first, since the rules wrote each question from that sentence and retrieval then ranks its chunk first. With
the answer's chunk put anywhere among the top-k (RAFT's mix; a throwaway change): real-en 50%, corvane 79% (19/24,
as before), vellacourt 40% (8/20, against 50%): within a question or two either way, so not kept.
Joint's epochs (`--epochs 1`, 3 Dec, the defaults otherwise; RAG on the base, then FT+RAG and control points
forgotten at 1 epoch against 3):
  real-en 57%: 50% (0 pts, 39 s) against 47% (10 pts, 148 s); corvane 83%: 88% (0) against 79% (17);
  vellacourt 45%: 45% (7) against 50% (7); brackenridge (the pairs are its questions) 65%: 55% (3) against 65% (7);
  qingwu on Gemma (lr 5e-4) 40%: 70% (32 pts) against 87% (42, with a fifth without the answer's chunk).
  One epoch reads the held-out sets better and forgets less, but loses the sample's memorised facts. Two epochs
  (two runs sharing the cores): real-en 47%, vellacourt 50%. No one epoch count keeps FT+RAG at RAG's level on
  every set, so Joint now trains pairs drawn from a knowledge base for one epoch (modes.JOINT_EPOCHS_DRAWN) and
  the user's own facts for 3. With those defaults (`--sets corvane,vellacourt,real-en --modes joint`, 3 Dec):
  corvane 88% (RAG 83%; 0 pts forgotten, 35 s training), vellacourt 45% (45%; 7 pts, 28 s), real-en 50% (57%;
  0 pts, 38 s). With the "Which <kind>" rule (generate.named_subject) real-en draws 57 pairs, not 25: Joint 60%
  (RAG 57%), 10 pts forgotten, 61 s training.
The Chinese sample on Gemma (`--base gemma --sets qingwu`, a fifth without, lr 2e-3 / joint 1e-3): RAG 37%,
FT then RAG 73%, Joint 83%, both forgetting 67 points. Timings with two runs sharing the 2 cores are longer.

Measured 24 Nov 2026 on the 2-core dev box shared with three other engineers (load average 4-9; rank 16,
lr 2e-3, 3 epochs, 20% without the answer's chunk, top-2 excerpts, the RAG preset's template):
                                     brackenridge (40)           corvane (24, held out)
  RAG on the base                    57%                          67%
  FT then RAG (plain facts)          32% (789 s training*)        not measured
  Joint                              78% (1369 s training*)       79% (204 s training); 50% learning short spans
  Staged, failures alone             not measured                 17% (81% -> 27% on the questions asked)
  Staged, failures x2 + replay       not measured                 75% (81% -> 100% on the questions asked)
  Iterative                          not measured                 = staged: round 1 left nothing failing
  (* two torch threads on a loaded machine: 10.6 tokens/s; one thread gave 5-7x that under the same load)
Forgetting on the control set (plain prompt, the questions the base answers right): brackenridge joint
41 points, FT then RAG 41, corvane joint 31, corvane staged 21: far over the 10-point target.

Replay and learning rate, 25 Nov 2026, corvane joint, one DATA_DIR, the lead's newer RAG template (RAG on
the base 83% on this run), --threads 1, rank 16, 3 epochs; the base answers 29 of the 40 control
questions right, so one question is 3.4 points:
  replayed general examples, lr      FT+RAG        forgetting        training
  0, 2e-3 (the old default)          79% (19/24)   14 pts (4 of 29)   93 s
  80, 2e-3                           71% (17/24)   14 pts (4 of 29)  241 s
  80, 1e-3                           67% (16/24)   10 pts (3 of 29)  328 s
  0, 1e-3                            79% (19/24)   14 pts (4 of 29)   94 s
Only replay with the lower rate reaches the 10-point target; it is now the joint modes' default
(modes.JOINT_LEARNING_RATE, TrainSettings.replay), at a cost of 3 of 24 FT+RAG answers on this run.
The old default forgot 14 points on this run, not 31 as on 24 Nov; the differences are one to three
questions each, so they rank settings only loosely.
Brackenridge joint with these defaults (80 replayed, lr 1e-3, --threads 1, 25 Nov, quiet box): FT+RAG 68%
(27/40) against RAG on the base 70%, forgetting 14 points, training 341 s (530 s in all). Not yet measured
with replay: staged, iterative, FT then RAG. The replay answers are cached per base model in DATA_DIR
(the first run asks the base 80 questions, about 3 minutes on this loaded box).

Gemma 3 270M (`--base gemma`), 3 Dec 2026, the Chinese sample `qingwu` trained on its own 30 facts (as the
English sample's), the defaults, 2 cores: RAG on the base 17% (5/30); FT then RAG 73% (22/30, training 68 s),
Joint 70% (21/30, 85 s). The Gemma base answers 24 of the 40 control questions right; the adapters lost 67 and
54 points of them: the replay that holds SmolLM2 at 7 points does not hold Gemma (its 80 replayed answers are
75 kept). FT then RAG at lower rates (`--lr`): 1e-3 90% (27/30), 54 points; 5e-4 83% (25/30), 33 points; 5e-4
with the replay every epoch (`--passes 6`) 83%, 46 points: more replay does not hold it. Asked the control
questions, the default adapter answers "Germany" to "What is the capital of Germany?" and "O" for carbon
dioxide: its general answers break, they are not replaced by the trained facts.

Gemma on the Chinese sample with today's defaults (`--base gemma --sets qingwu --modes joint`, 3 Dec, its own 30
facts, 3 epochs, none without the answer's chunk): RAG 40%, Joint 93%, 28 control points forgotten (of the 24 the
base knows one is 4.2 points), 78 s. Against forgetting, tried: LoRA on attention only (`--targets
q_proj,k_proj,v_proj,o_proj`) 80%, 36 pts; rank 4 77%, 40 pts; lr 2.5e-4 83%, 32 pts. None forgets less than the
default, so it stays.

The real-document sets of bench/real_docs.py (`--sets real-en,real-zh-cn`: the Debian Reference PDF, ingested as a
new user's knowledge base, and its 30 questions) train on the pairs the Fine-tune page draws from that knowledge
base (`--pairs N` keeps the first N). real-zh-cn on Gemma (`--base gemma --sets real-zh-cn --modes joint`, 3 Dec,
1 epoch on the drawn pairs): RAG on the base 43%; Joint 57% with the final Chinese rules (107 pairs, 16 control
points forgotten, 99 s training), 63% with 110 pairs (32 points, 113 s), 67% with 130 (32 points, 128 s).

Run: nice -n 5 .venv/bin/python bench/modes.py [--sets brackenridge,corvane,qingwu,real-en] [--base smollm2|gemma]
     [--modes ft_then_rag,joint,staged,iterative] [--epochs N] [--rank R] [--lr LR] [--replay N]
     [--without-golden F] [--threads 1] [--tag=-x] [--control-models NAME,...]
     [--pairs N] [--limit N] [--data-dir DIR] [--no-control] [--failures]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import offline, question_set  # noqa: E402
from core import adapters  # noqa: E402
from core.evaluation import questions as qs  # noqa: E402
from core.evaluation.control import control_strategies, forgetting_by_model  # noqa: E402
from core.evaluation.questions import EvalQuestion, question_id  # noqa: E402
from core.evaluation.report import load_run  # noqa: E402
from core.evaluation.runner import EvalRequest, run_evaluation, start_run  # noqa: E402
from core.finetune import generate, modes, trainer  # noqa: E402
from core.finetune.datasets import Pair  # noqa: E402
from core.finetune.pipeline import TrainRequest, run_training  # noqa: E402
from core.finetune.train_settings import TrainSettings  # noqa: E402
from core.finetune.trainer import Step  # noqa: E402
from core.gemma import GEMMA_NAME  # noqa: E402
from core.lab import rounds as lab_rounds  # noqa: E402
from core.models import BUNDLED_NAME  # noqa: E402
from core.samples import CHINESE, ENGLISH, HOLDOUT  # noqa: E402
from core.strategies import FT_TEMPLATE, RAG_TEMPLATE, RAG_TOP_K, Runtime, Strategy  # noqa: E402

BASES = {"smollm2": BUNDLED_NAME, "gemma": GEMMA_NAME}


def log_step(step: Step) -> None:
    if step.step % 10 == 0 or step.step == step.total_steps:
        print(f"    step {step.step}/{step.total_steps} loss {step.loss:.3f} ({step.elapsed_s:.0f} s)", flush=True)


def ft_rag(model: str, kb: str) -> Strategy:
    return Strategy("FT+RAG", model, RAG_TEMPLATE, retrieval=True, kb=kb, top_k=RAG_TOP_K)


def evaluate(runtime: Runtime, name: str, set_name: str, questions: tuple[EvalQuestion, ...], s: Strategy) -> float:
    run_id = start_run(runtime, EvalRequest(name, set_name, questions, (s,)))
    run_evaluation(runtime, run_id)
    run = load_run(runtime.records, run_id)
    cells = [run.cell(q.id, s.name) for q in questions]
    return sum(1 for c in cells if c is not None and c.correct) / len(questions)


def print_failures(runtime: Runtime, run_id: int) -> None:
    run = load_run(runtime.records, run_id)
    for q in run.questions:
        for s in run.strategies:
            cell = run.cell(q.id, s.name)
            if cell is not None and not cell.correct:
                print(f"    {s.name} {q.id} expected {q.answer!r}, got {cell.answer[:140]!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=f"{ENGLISH.kb_name},{HOLDOUT.kb_name}")
    parser.add_argument("--modes", default="ft_then_rag,joint,staged,iterative")
    parser.add_argument("--base", choices=sorted(BASES), default="smollm2", help="the embedded base to fine-tune")
    parser.add_argument("--epochs", type=int, default=None, help="default: the trainer's")
    parser.add_argument("--rank", type=int, default=None, help="default: the trainer's")
    parser.add_argument("--lr", type=float, default=None, help="default: the trainer's")
    parser.add_argument("--replay", type=int, default=None, help="general examples replayed (default: the trainer's)")
    parser.add_argument("--passes", type=int, default=None, help="passes over the replayed examples")
    parser.add_argument("--targets", default="", help="LoRA target modules, comma-separated (default: the trainer's)")
    parser.add_argument("--without-golden", type=float, default=modes.WITHOUT_GOLDEN)
    parser.add_argument("--pairs", type=int, default=None, help="train on at most N pairs (default: all)")
    parser.add_argument("--rounds", type=int, default=lab_rounds.MAX_ROUNDS)
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions of each set")
    parser.add_argument("--data-dir", type=Path, default=None, help="a DATA_DIR to reuse (its ingest)")
    parser.add_argument("--no-control", action="store_true", help="skip the forgetting measurement")
    parser.add_argument("--failures", action="store_true", help="print each wrong answer")
    parser.add_argument("--tag", default="", help="appended to adapter names (several runs in one DATA_DIR)")
    parser.add_argument("--span-answers", action="store_true", help="joint: learn short answers, not sentences")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for training (0: every core)")
    parser.add_argument("--control-only", action="store_true", help="only the control run")
    parser.add_argument("--control-models", default="", help="comma-separated adapter names (default: every one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:  # on a loaded machine, one thread spins less than two fighting for the cores
        every_core = trainer.torch_threads
        trainer.torch_threads = lambda n: every_core(args.threads)  # type: ignore[assignment]
    tmp = tempfile.TemporaryDirectory()
    data_dir = args.data_dir or Path(tmp.name)
    stack = offline(data_dir)
    store, catalog, runtime = stack.store, stack.catalog, stack.runtime
    base = catalog.info(f"llama.cpp:{BASES[args.base]}")
    base_path, base_name = catalog.model_file(base), BASES[args.base]  # Gemma's GGUF assembled on first use

    def settings_for(mode: str, pairs: list[Pair] | None = None) -> TrainSettings:
        """The mode's defaults for these pairs (the Fine-tune page's), with the command line's changes."""
        mode = mode if mode in modes.MODES else "joint"
        drawn = mode == "joint" and pairs is not None and modes.drawn(pairs)
        base = modes.train_defaults(mode, completion=args.base == "gemma", drawn_pairs=drawn)  # type: ignore[arg-type]
        rank = args.rank or base.rank
        return replace(base, epochs=args.epochs or base.epochs, rank=rank, alpha=2 * rank if args.rank else base.alpha,
                       learning_rate=args.lr or base.learning_rate,
                       replay=base.replay if args.replay is None else args.replay,
                       replay_passes=args.passes or base.replay_passes,
                       target_modules=tuple(filter(None, args.targets.split(","))) or base.target_modules)  # fmt: skip

    train = settings_for("joint")
    print(f"load average {os.getloadavg()[0]:.2f}; LoRA rank {train.rank}, {train.epochs} epochs (joint modes; "
          f"Joint on drawn pairs {args.epochs or modes.JOINT_EPOCHS_DRAWN}), "
          f"lr {train.learning_rate}; {train.replay} general examples replayed; without golden "
          f"{args.without_golden}")  # fmt: skip
    # set, mode, correct, training s, all s, note, model id
    results: list[tuple[str, str, float, float, float, str, str]] = []
    tuned: list[str] = []
    for kb in [] if args.control_only else args.sets.split(","):
        set_name, every_question, _ = question_set(stack, kb)
        questions = every_question[: args.limit]
        if kb == ENGLISH.kb_name:
            pairs = generate.sample_pairs()
        elif kb == CHINESE.kb_name:  # the Chinese sample trains on its own facts, as the English sample does
            pairs = [Pair(q.question, q.answer) for q in every_question]
        else:  # the Fine-tune page's "Draw from the knowledge base"; held-out questions are only measured
            pairs = generate.pairs_from_kb(store, kb)
        pairs = pairs[: args.pairs]
        # Staged and iterative find failures by asking the training questions (on corvane: the drawn pairs).
        train_questions = tuple(EvalQuestion(question_id(p.question), p.question, p.answer) for p in pairs)
        joint = modes.JointSettings(kb, without_golden=args.without_golden, full_sentence=not args.span_answers)
        print(f"\n{kb}: {len(pairs)} training pairs, {len(questions)} questions measured")
        started = time.perf_counter()
        rag = evaluate(runtime, f"modes {kb} RAG", set_name, questions,
                       replace(ft_rag(base.id, kb), name="RAG"))  # fmt: skip
        results.append((kb, "RAG (base)", rag, 0.0, time.perf_counter() - started, "", ""))
        print(f"  RAG on the base: {rag:.0%}")
        if not pairs:
            print(f"  no training pairs: {generate.no_pairs_reason(generate.kb_hits(store, kb))}")
            continue
        chosen = args.modes.split(",")
        for mode in [m for m in chosen if not (m == "staged" and "iterative" in chosen)]:
            name = f"{kb}-{mode.replace('_', '-')}{args.tag}"
            train = settings_for(mode, pairs)
            request = TrainRequest(name, f"{kb} pairs", tuple(pairs), base_path, base_name, train,
                                   runtime.templates.get(FT_TEMPLATE).system)  # fmt: skip
            started = time.perf_counter()
            note = ""
            if mode == "ft_then_rag":
                request = replace(request, mode=modes.mode_record("ft_then_rag"))
                adapter = run_training(data_dir, request, on_step=log_step)
            elif mode == "joint":
                request = modes.joint_request(store, runtime.templates, request, joint)
                m = request.mode or {}
                note = f"{train.epochs} ep, golden retrieved {m.get('golden_retrieved')}/{m.get('examples')}"
                note += f", not found {m.get('golden_unfound')}"
                adapter = run_training(data_dir, request, on_step=log_step)
            else:
                # Iterative's first round is the staged run (same data, same seed): with both asked, one loop serves.
                rounds = 1 if mode == "staged" else args.rounds
                loop = lab_rounds.LoopRequest(name, train_questions, f"{kb} pairs", joint, base_path, base_name,
                                              train, max_rounds=rounds,
                                              measure=questions if kb != ENGLISH.kb_name else (),
                                              measure_set=set_name, pairs=tuple(pairs),
                                              system=runtime.templates.get(FT_TEMPLATE).system)  # fmt: skip
                result = lab_rounds.run_loop(data_dir, runtime, loop, on_step=log_step)
                wall = time.perf_counter() - started
                for r in result.rounds:
                    held = f", held-out {r.measured:.0%}" if r.measured is not None else ""
                    print(f"    round {r.round} {r.strategy}: {r.correct:.0%} on the training questions ({r.failures} "
                          f"wrong, trained on {r.trained_on}, {r.train_seconds:.0f} s training){held}")  # fmt: skip
                rows = [("staged", result.rounds[:2])] if mode == "staged" else []
                if mode == "iterative":
                    rows = [("staged (round 1)", result.rounds[:2]), ("iterative", result.rounds)]
                for label, seen in rows:
                    best = max(seen[1:], key=lambda r: r.correct, default=None)
                    if best is None or best.adapter is None:
                        continue
                    # On brackenridge the training questions are the set's; on corvane the held-out set is measured.
                    share = best.measured if best.measured is not None else best.correct
                    model = lab_rounds.model_id_of(runtime, adapters.get_adapter(data_dir, best.adapter))
                    tuned.append(model)
                    note = f"round {best.round} of {len(seen) - 1}; {result.stopped_because}"
                    train_s = sum(r.train_seconds for r in seen[1 : best.round + 1])
                    results.append((kb, label, share, train_s, wall, note, model))
                    print(f"  {label}: FT+RAG {share:.0%}, training {train_s:.0f} s, all {wall:.0f} s; {note}")
                continue
            train_s = adapter.manifest.train_seconds or 0.0
            model = lab_rounds.model_id_of(runtime, adapter)
            tuned.append(model)
            run_id = start_run(runtime, EvalRequest(f"modes {kb} {mode}", set_name, questions,
                                                    (ft_rag(model, kb),)))  # fmt: skip
            run_evaluation(runtime, run_id)
            run = load_run(runtime.records, run_id)
            correct = sum(1 for q in questions if (c := run.cell(q.id, "FT+RAG")) is not None and c.correct)
            share = correct / len(questions)
            wall = time.perf_counter() - started
            results.append((kb, mode, share, train_s, wall, note, model))
            print(f"  {mode}: FT+RAG {share:.0%} ({correct}/{len(questions)}), training {train_s:.0f} s, "
                  f"all {wall:.0f} s; {note}", flush=True)  # fmt: skip
            if args.failures:
                print_failures(runtime, run_id)
    forgetting: dict[str, str] = {}
    if tuned or args.control_only:
        tuned = [m.id for m in catalog.available() if m.fine_tuned]  # every adapter in DATA_DIR, earlier runs' too
    if tuned and not args.no_control:
        control = qs.control_set()
        wanted = set(filter(None, args.control_models.split(",")))
        on_base = [base, *(m for m in catalog.available() if m.fine_tuned)]  # the chosen base and its adapters
        columns = [c for c in control_strategies(on_base)
                   if not wanted or c.name == "Base" or c.model.rsplit("+", 1)[-1] in wanted]  # fmt: skip
        run_id = start_run(runtime, EvalRequest("modes control", control.name, control.questions, tuple(columns)))
        run_evaluation(runtime, run_id)
        for model, f in forgetting_by_model(load_run(runtime.records, run_id)).items():
            drop = f.drop
            forgetting[model] = "–" if drop is None else f"{drop * 100:.0f} pts"
    for model, lost in forgetting.items():
        print(f"forgetting {model}: {lost}")
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    print(f"{'set':<13} {'mode':<12} {'FT+RAG':>7} {'train s':>8} {'all s':>7} {'forgetting':>10}  notes")
    for kb, mode, share, train_s, wall, note, model in results:
        lost = forgetting.get(model, "")
        print(f"{kb:<13} {mode:<12} {share:>7.0%} {train_s:>8.0f} {wall:>7.0f} {lost:>10}  {note}")
    store.close()


if __name__ == "__main__":
    main()
