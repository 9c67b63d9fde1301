"""A parameter sweep: RAG settings over a grid, asked as one evaluation run.

Each chunking (size, overlap) gets a scratch knowledge base made by re-chunking the source
knowledge base's documents (the app keeps no original files: each page's text is rebuilt from
its chunks). Every cell of the grid (chunking x top-k x score threshold x template) becomes a RAG
`Strategy` on its chunking's scratch knowledge base, so the whole sweep is one run of the
ordinary runner (progress, Stop and resume included), and a stored run reads back into a grid:
its strategies carry top-k, threshold and template, the scratch name the chunking.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

from core.documents import DocumentKind, Page, ParsedDocument
from core.errors import AppError, EvaluationError, KnowledgeBaseError
from core.evaluation.questions import EvalQuestion
from core.evaluation.report import RunData, summarize
from core.evaluation.runner import EvalRequest
from core.ingest import add_parsed
from core.progress import CancelFlag, Progress
from core.store import SCRATCH_PREFIX, KnowledgeBase, SearchHit, Store, check_kb_name
from core.strategies import Strategy
from core.text import is_cjk

log = logging.getLogger(__name__)

_SCRATCH = re.compile(rf"^{re.escape(SCRATCH_PREFIX)}(\d+)-(\d+)--(.+)$")
_MAX_NAME = 48
# A chunk's start shared with the previous chunk's end shorter than this is taken as chance, not overlap.
MIN_OVERLAP = 4
_SENTENCE_END = re.compile(r"[.!?:;)\]]$")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True, order=True)
class Chunking:
    size: int
    overlap: int

    @property
    def label(self) -> str:
        return f"{self.size}/{self.overlap}"


@dataclass(frozen=True)
class GridCell:
    """One combination of settings: a column of the sweep's run."""

    chunking: Chunking
    top_k: int
    threshold: float | None
    template: str

    @property
    def name(self) -> str:
        threshold = "no threshold" if self.threshold is None else f"score ≥ {self.threshold:g}"
        return f"{self.chunking.label} · top-{self.top_k} · {threshold} · {self.template}"


@dataclass(frozen=True)
class Grid:
    """The settings to try on one knowledge base; every combination is asked."""

    kb: str
    chunkings: tuple[Chunking, ...]
    top_ks: tuple[int, ...]
    thresholds: tuple[float | None, ...]
    templates: tuple[str, ...]

    @property
    def cells(self) -> list[GridCell]:
        return [GridCell(*c) for c in itertools.product(self.chunkings, self.top_ks, self.thresholds, self.templates)]

    def check(self) -> None:
        if not (self.chunkings and self.top_ks and self.thresholds and self.templates):
            raise EvaluationError("The sweep needs at least one chunking, top-k, threshold and template.")
        for c in self.chunkings:
            if c.size < 50 or c.overlap < 0 or c.overlap >= c.size:
                raise EvaluationError(
                    f"Chunking {c.label} is not usable: the size must be at least 50 and the overlap smaller than it."
                )
        if any(k < 1 for k in self.top_ks):
            raise EvaluationError("Top-k values must be at least 1.")
        if any(t is not None and not 0.0 <= t <= 1.0 for t in self.thresholds):
            raise EvaluationError("Score thresholds must lie between 0 and 1 (or be none).")


def scratch_name(kb: str, chunking: Chunking) -> str:
    """The scratch knowledge base of `kb` re-chunked this way: `sweep--800-120--kb` (long names shortened)."""
    head = f"{SCRATCH_PREFIX}{chunking.size}-{chunking.overlap}--"
    if len(head) + len(kb) > _MAX_NAME:
        digest = hashlib.sha1(kb.encode()).hexdigest()[:6]
        kb = f"{kb[: _MAX_NAME - len(head) - 7]}-{digest}"
    return check_kb_name(head + kb)


def parse_scratch(name: str) -> Chunking | None:
    """The chunking a scratch knowledge base's name encodes, or None for any other name."""
    m = _SCRATCH.match(name or "")
    return Chunking(int(m.group(1)), int(m.group(2))) if m else None


def merge_chunks(texts: Sequence[str], max_overlap: int | None = None) -> str:
    """Consecutive chunks of one page back into the page's text.

    Each chunk is joined on the longest suffix of the text so far that starts it (at most
    `max_overlap` characters, at least `MIN_OVERLAP`); where they share nothing, the whitespace
    the splitter trimmed comes back as a paragraph break after a sentence or before a heading,
    nothing between CJK characters, a space otherwise.
    """
    page = ""
    for text in texts:
        if not page:
            page = text
            continue
        limit = min(len(page), len(text), max_overlap if max_overlap is not None else len(text))
        shared = next((n for n in range(limit, MIN_OVERLAP - 1, -1) if page.endswith(text[:n])), 0)
        if shared:
            page += text[shared:]
        elif text.startswith("#") or _HEADING.fullmatch(page.rsplit("\n", 1)[-1]):
            page += "\n\n" + text
        elif is_cjk(page[-1]) and is_cjk(text[0]):
            page += text
        elif _SENTENCE_END.search(page):
            page += "\n\n" + text  # the splitter cuts at paragraphs first: most such cuts were one
        else:
            page += " " + text
    return page


def _with_headings(hits: Sequence[SearchHit]) -> list[str]:
    """Chunk texts with the Markdown headings of sections that had no text of their own put back.

    Such a heading survives only in the heading path of the chunks below it ("Setup > Pairing");
    it is written one level above the heading that starts the next chunk.
    """
    texts = []
    before: list[str] = []
    for h in hits:
        path = h.heading.split(" > ") if h.heading else []
        m = _HEADING.match(h.text)
        if m and path and path[-1] == m.group(2).strip():
            level = len(m.group(1))
            common = next((i for i, (a, b) in enumerate(zip(before, path, strict=False)) if a != b), len(before))
            missing = path[min(common, len(path) - 1) : -1]
            lines = [f"{'#' * max(1, level - len(missing) + i)} {title}" for i, title in enumerate(missing)]
            texts.append("\n\n".join([*lines, h.text]))
        else:
            texts.append(h.text)
        before = path
    return texts


def page_texts(hits: Sequence[SearchHit], max_overlap: int | None = None) -> list[Page]:
    """A document's pages rebuilt from its chunks (in reading order, as `Store.chunks_of` gives them)."""
    by_page: dict[int, list[SearchHit]] = {}
    for h in sorted(hits, key=lambda h: h.chunk_index):
        by_page.setdefault(h.page, []).append(h)
    pages = []
    for number, hits_of_page in by_page.items():
        texts = _with_headings(hits_of_page)
        text = merge_chunks(texts, max_overlap)
        pages.append(Page(number, text, sections=_sections(text, texts, [h.heading for h in hits_of_page])))
    return pages


def _sections(page: str, texts: Sequence[str], headings: Sequence[str | None]) -> tuple[tuple[int, str], ...]:
    """Where each chunk's section path starts in the rebuilt page, so a PDF's or Word file's paths survive."""
    sections: list[tuple[int, str]] = []
    at = 0
    for text, heading in zip(texts, headings, strict=True):
        found = page.find(text[:60], at)
        at = found if found >= 0 else at
        if heading and (not sections or sections[-1][1] != heading):
            sections.append((at, heading))
    return tuple(sections)


def rebuild_documents(store: Store, kb: str) -> list[ParsedDocument]:
    """The finished documents of a knowledge base as parsed documents (same ids), rebuilt from their chunks."""
    info = store.get_kb(kb)
    docs = []
    for record in store.list_documents(kb):
        pages = page_texts(store.chunks_of(kb, record.doc_id), info.chunk_overlap)
        docs.append(
            ParsedDocument(
                doc_id=record.doc_id,
                filename=record.filename,
                kind=cast(DocumentKind, record.kind),
                pages=tuple(pages),
                size_bytes=record.size_bytes,
                encoding=record.encoding,
            )
        )
    return docs


def rechunk(
    store: Store,
    source: str,
    target: str,
    chunking: Chunking,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> KnowledgeBase:
    """Make `target` hold the documents of `source` chunked anew (its embedding model, analyser and mode).

    An existing `target` with this chunking and model is brought up to date: documents missing
    from it are added, those no longer in `source` removed; one with other settings is refused.
    """
    src = store.require_kb(source)
    existing = {k.name: k for k in store.list_kbs(scratch=True)}.get(target)
    if existing is None:
        kb = store.create_kb_like(target, src, chunk_size=chunking.size, chunk_overlap=chunking.overlap)
    elif (existing.chunk_size, existing.chunk_overlap, existing.embedding_model, existing.analyser) != (
        chunking.size,
        chunking.overlap,
        src.embedding_model,
        src.analyser,
    ):
        raise KnowledgeBaseError(f"Knowledge base {target!r} already exists with other settings; pick another name.")
    else:
        kb = existing
    docs = rebuild_documents(store, source)
    wanted = {d.doc_id for d in docs}
    for record in store.list_documents(target):
        if record.doc_id not in wanted:
            store.delete_document(target, record.doc_id)
    reports = add_parsed(store, target, docs, progress=progress, cancel=cancel)
    refused = [r for r in reports if r.status == "refused"]
    if refused:
        raise KnowledgeBaseError(f"Could not re-chunk {refused[0].filename} into {target}: {refused[0].message}")
    return kb


def is_current(store: Store, source: str, target: str) -> bool:
    """Whether `target` exists and holds exactly the documents of `source`."""
    if target not in {k.name for k in store.list_kbs(scratch=True)}:
        return False
    have = {r.doc_id for r in store.list_documents(target)}
    return have == {r.doc_id for r in store.list_documents(source)}


def prepare(store: Store, grid: Grid, *, progress: Progress | None = None, cancel: CancelFlag | None = None) -> None:
    """Build (or reuse) the scratch knowledge base of every chunking in the grid."""
    for i, chunking in enumerate(grid.chunkings):
        if cancel is not None and cancel.is_set():
            return
        target = scratch_name(grid.kb, chunking)
        if is_current(store, grid.kb, target):
            continue
        step = f"Chunking {chunking.label} ({i + 1}/{len(grid.chunkings)})"

        def report(done: int, total: int, message: str, step: str = step) -> None:
            if progress is not None:
                progress(done, total, f"{step}: {message}")

        rechunk(store, grid.kb, target, chunking, progress=report, cancel=cancel)


def scratch_kbs(store: Store, kb: str | None = None) -> list[KnowledgeBase]:
    """The scratch knowledge bases (of `kb` only, if given)."""
    found = [k for k in store.list_kbs(scratch=True) if parse_scratch(k.name) is not None]
    if kb is None:
        return found
    return [k for k in found if k.name == scratch_name(kb, Chunking(k.chunk_size, k.chunk_overlap))]


def delete_scratch(store: Store, kb: str | None = None) -> list[str]:
    """Delete the scratch knowledge bases (of `kb` only, if given); returns their names."""
    names = [k.name for k in scratch_kbs(store, kb)]
    for name in names:
        store.delete_kb(name)
    return names


def strategies(grid: Grid, base: Strategy) -> tuple[Strategy, ...]:
    """One RAG strategy per cell, on its chunking's scratch knowledge base; `base` gives model and limits."""
    return tuple(
        replace(
            base,
            name=c.name,
            template=c.template,
            template_version=None,
            retrieval=True,
            kb=scratch_name(grid.kb, c.chunking),
            top_k=c.top_k,
            score_threshold=c.threshold,
        )
        for c in grid.cells
    )


def request(grid: Grid, base: Strategy, name: str, question_set: str, questions: Sequence[EvalQuestion]) -> EvalRequest:
    """The sweep as one evaluation request."""
    grid.check()
    return EvalRequest(name, question_set, tuple(questions), strategies(grid, base))


def cell_of(strategy: Strategy) -> GridCell | None:
    """The grid cell a run's strategy asked, or None if it is not a sweep's."""
    chunking = parse_scratch(strategy.kb or "")
    if chunking is None or not strategy.retrieval:
        return None
    return GridCell(chunking, strategy.top_k, strategy.score_threshold, strategy.template)


def grid_of(req: EvalRequest, kbs: Sequence[str] = ()) -> Grid | None:
    """The grid a stored run swept, or None if it was not a sweep.

    The source knowledge base is the one of `kbs` whose scratch names the run used ("" if none is).
    """
    cells = [cell_of(s) for s in req.strategies]
    if not cells or any(c is None for c in cells):
        return None
    known = [c for c in cells if c is not None]
    used = {s.kb for s in req.strategies}
    source = next((k for k in kbs if all(scratch_name(k, c.chunking) in used for c in known)), "")

    def ordered(values: Sequence[object]) -> tuple[object, ...]:
        return tuple(dict.fromkeys(values))

    return Grid(
        source,
        cast(tuple[Chunking, ...], ordered([c.chunking for c in known])),
        cast(tuple[int, ...], ordered([c.top_k for c in known])),
        cast(tuple[float | None, ...], ordered([c.threshold for c in known])),
        cast(tuple[str, ...], ordered([c.template for c in known])),
    )


@dataclass(frozen=True)
class CellResult:
    cell: GridCell
    strategy: str
    answered: int
    correct: float | None
    p50_s: float | None


def results(run: RunData) -> list[CellResult]:
    """Correctness and p50 latency of every cell of a sweep's run, in grid order."""
    out = []
    for s, summary in zip(run.strategies, summarize(run), strict=True):
        cell = cell_of(s)
        if cell is not None:
            out.append(CellResult(cell, s.name, summary.answered, summary.correct, summary.total_p50))
    return out


def best(cells: Sequence[CellResult]) -> CellResult | None:
    """The most often correct cell; ties go to the faster, then to fewer chunks."""
    scored = [c for c in cells if c.correct is not None and c.answered]
    if not scored:
        return None
    return min(scored, key=lambda c: (-(c.correct or 0.0), c.p50_s if c.p50_s is not None else 1e9, c.cell.top_k))


def answers(grid: Grid, questions: int) -> int:
    """How many answers the sweep takes."""
    return len(grid.cells) * questions


def apply_chunking(
    store: Store,
    source: str,
    target: str,
    chunking: Chunking,
    *,
    progress: Progress | None = None,
) -> KnowledgeBase:
    """A new (ordinary) knowledge base with the documents of `source` in this chunking.

    Raises:
        KnowledgeBaseError: the name is taken or not valid; nothing is created then.
    """
    target = check_kb_name(target)
    if target.startswith(SCRATCH_PREFIX):
        raise KnowledgeBaseError(f"Names starting with {SCRATCH_PREFIX!r} are kept for sweeps; pick another name.")
    if target in {k.name for k in store.list_kbs(scratch=True)}:
        raise KnowledgeBaseError(f"Knowledge base {target!r} already exists; pick another name.")
    try:
        return rechunk(store, source, target, chunking, progress=progress)
    except BaseException:
        try:
            store.delete_kb(target)  # no half-made knowledge base left behind
        except AppError:
            log.exception("Could not remove the half-made knowledge base %s", target)
        raise


# Re-chunking a scratch knowledge base, per chunk (rebuild, MiniLM on the CPU, keyword vectors, store):
# bench/sweep.py on the sample at load 6 on 2 cores, 0.12-0.18 s (400/60: 100 chunks in 11.8 s).
EMBED_S_PER_CHUNK = 0.15
# An answer of the embedded SmolLM2-135M with the RAG template, scored, before any run was timed:
# bench/sweep.py, 90 answers in 174 s at the same load.
ANSWER_S = 2.0


def chunks_to_embed(store: Store, grid: Grid) -> int:
    """About how many chunks building the grid's scratch knowledge bases embeds (0 for those already current)."""
    src = store.get_kb(grid.kb)
    stored = sum(r.chunks for r in store.list_documents(grid.kb))
    step = max(src.chunk_size - src.chunk_overlap, 1)
    return sum(
        round(stored * step / max(c.size - c.overlap, 1))
        for c in grid.chunkings
        if not is_current(store, grid.kb, scratch_name(grid.kb, c))
    )


def estimate_s(answers_n: int, chunks: int, answer_s: float | None = None) -> float:
    """Seconds the sweep will take: its answers at `answer_s` each, plus embedding the scratch chunks."""
    return answers_n * (answer_s or ANSWER_S) + chunks * EMBED_S_PER_CHUNK
