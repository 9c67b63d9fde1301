"""Prompt templates: named variables only, rendered by a restricted formatter, stored with versions.

A template has a system prompt, optional few-shot examples, a user template with `{question}`
(and `{context}` for retrieval, `{examples}` to place examples as text), and a source format
that decides how retrieved chunks are listed and numbered (`{n}`, `{source}`, `{page}`,
`{heading}`, `{text}`, `{excerpt}`: the chunk's sentences that share most words with the
question). Rendering never calls `str.format`: fields are looked up by plain
name, so `{question.__class__}` or `{context[0]}` is an error, not a leak.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import TemplateError
from core.files import atomic_write_text, now_iso
from core.text import SENTENCE_BREAK, is_cjk

TEMPLATE_VARIABLES = frozenset({"question", "context", "examples"})
SOURCE_VARIABLES = frozenset({"n", "source", "page", "heading", "text", "excerpt"})
EXCERPT_SENTENCES = 1
# A line that starts a unit of its own: a list item, a numbered step, a Markdown heading, a table row.
_LINE_START = re.compile(r"^(?:[-*•·–]\s|\d{1,2}[.)]\s|#|\|)")
_WRAP_WIDTH = 60  # a line at least this long that ends mid-sentence was wrapped by the PDF's layout
_LINE_END = (".", ":", "!", "?", ";", "。", "！", "？", "；", "：")
_WORD = re.compile(r"\w+")
_QUESTION_WORDS = {
    "a", "an", "the", "is", "are", "was", "were", "be", "of", "to", "in", "on", "for", "by", "at", "with", "and",
    "or", "what", "which", "who", "whom", "whose", "how", "when", "where", "why", "does", "do", "did", "can", "may",
    "must", "it", "its", "this", "that", "from", "as", "per", "much", "many", "long",
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,63}$")
_FOLDER_SEP = re.compile(r"[ _]+")
DEFAULT_SOURCE_FORMAT = "[{n}] {source}, page {page}:\n{text}"
DEFAULT_SOURCE_SEPARATOR = "\n\n"
# What the Prompts page offers between two listed sources.
SEPARATORS = (("a blank line", "\n\n"), ("a line break", "\n"), ("a space (one running text)", " "))
# Added to the prompt of a Chinese question ("Answer in Chinese."); see `language_instruction`.
ANSWER_IN_CHINESE = "请用中文回答。"
# A pre-trained base model (no chat template) gets a template in completion form: the text, the question and the
# start of its answer, labelled in the question's language ("文本：… 问题：… 答案："). On a real Chinese manual with
# the same excerpts Gemma 3 270M answered 4/15 so, SmolLM2 2/15 (issue 23).
COMPLETION_LABELS = {"en": ("Text: ", "Question: ", "Answer:"), "zh": ("文本：", "问题：", "答案：")}
# Where a base model's answer ends besides its line's end (`core.engine`): it writes on with the next question.
COMPLETION_STOPS = ("Question:", "问题：", "<end_of_turn>")


@dataclass(frozen=True)
class Example:
    question: str
    answer: str


@dataclass(frozen=True)
class Source:
    """A retrieved chunk as a template sees it."""

    source: str
    page: int
    text: str
    heading: str | None = None


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    user: str
    examples: tuple[Example, ...] = ()
    source_format: str = DEFAULT_SOURCE_FORMAT
    description: str = ""
    version: int = 0
    saved: str = ""
    source_separator: str = DEFAULT_SOURCE_SEPARATOR

    @property
    def uses_context(self) -> bool:
        return "context" in fields_of(self.system) | fields_of(self.user)

    def validate(self) -> None:
        """Raise TemplateError naming every problem, before any model is called."""
        problems: list[str] = []
        if not self.user.strip():
            problems.append("the user template is empty")
        for part, text, allowed in (
            ("system prompt", self.system, TEMPLATE_VARIABLES),
            ("user template", self.user, TEMPLATE_VARIABLES),
            ("source format", self.source_format, SOURCE_VARIABLES),
        ):
            try:
                unknown = fields_of(text) - allowed
            except TemplateError as e:
                problems.append(f"{part}: {e}")
                continue
            if unknown:
                problems.append(f"{part}: unknown variable(s) {_braced(unknown)}; allowed: {_braced(allowed)}")
        if "question" not in _safe_fields(self.user, default={"question"}):
            problems.append("the user template must contain {question}")
        for i, ex in enumerate(self.examples, start=1):
            if not ex.question.strip() or not ex.answer.strip():
                problems.append(f"example {i} needs both a question and an answer")
        if problems:
            raise TemplateError("Template problems: " + "; ".join(problems) + ".")

    def render(self, question: str, sources: Sequence[Source] | None = None) -> list[dict[str, str]]:
        """The exact chat messages sent to a model.

        Few-shot examples become user/assistant turns, unless the template places them
        itself with `{examples}`.

        Raises:
            TemplateError: the template is invalid, or needs `{context}` and got no sources
                (or got sources it has no place for).
        """
        self._check_sources(sources)
        values = self._values(question, sources)
        messages: list[dict[str, str]] = []
        if self.system.strip():
            messages.append({"role": "system", "content": fill(self.system, values)})
        if "examples" not in fields_of(self.user) | fields_of(self.system):
            for ex in self.examples:
                messages.append({"role": "user", "content": ex.question})
                messages.append({"role": "assistant", "content": ex.answer})
        user = fill(self.user, values)
        if instruction := language_instruction(question):
            user = f"{user}\n\n{instruction}"
        messages.append({"role": "user", "content": user})
        return messages

    def render_completion(self, question: str, sources: Sequence[Source] | None = None) -> str:
        """The template in completion form, the exact text a pre-trained base model continues.

        A base model follows no instructions, so the system prompt and the user template's own words are left
        out; what it keeps is what a text continuation needs: the few-shot examples as question/answer pairs, the
        sources (in the template's source format) when it uses `{context}`, the question and the label its answer
        follows, all labelled in the question's language.

        Raises:
            TemplateError: as `render`.
        """
        self._check_sources(sources)
        text, q, a = COMPLETION_LABELS["zh" if is_cjk(question) else "en"]
        space = " " if a.endswith(":") else ""  # "Answer: Paris." but "答案：巴黎。"
        parts = [f"{q}{ex.question}\n{a}{space}{ex.answer}" for ex in self.examples]
        if self.uses_context:
            parts.append(f"{text}{self.format_context(sources or [], question)}")
        parts.append(f"{q}{question}\n{a}")
        return "\n".join(parts)

    def _check_sources(self, sources: Sequence[Source] | None) -> None:
        self.validate()
        if self.uses_context and sources is None:
            raise TemplateError(
                f"Template {self.name!r} needs {{context}} but retrieval is off; turn retrieval on "
                "or pick a template without {context}."
            )
        if sources is not None and not self.uses_context:
            raise TemplateError(
                f"Retrieval is on but template {self.name!r} has no {{context}} to put the sources in; "
                "pick a RAG template or add {context}."
            )

    def _values(self, question: str, sources: Sequence[Source] | None) -> dict[str, str]:
        return {
            "question": question,
            "context": self.format_context(sources or [], question),
            "examples": "\n\n".join(f"Q: {ex.question}\nA: {ex.answer}" for ex in self.examples),
        }

    def format_context(self, sources: Sequence[Source], question: str = "") -> str:
        if not sources:
            return "(no matching passages were found)"
        wants_excerpt = "excerpt" in fields_of(self.source_format)
        return self.source_separator.join(
            fill(
                self.source_format,
                {
                    "n": str(n),
                    "source": s.source,
                    "page": str(s.page),
                    "heading": s.heading or "",
                    "text": s.text,
                    "excerpt": excerpt(s.text, question) if wants_excerpt else "",
                },
            )
            for n, s in enumerate(sources, start=1)
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> PromptTemplate:
        """Parse an exported template; raises TemplateError naming every malformed field."""
        try:
            data = _TemplateFile.model_validate_json(text)
        except ValidationError as e:
            raise TemplateError(
                f"Not a template file ({_problems(e)}); export one from the Prompts page to see the format."
            ) from e
        fields = data.model_dump(exclude={"examples"})
        return cls(examples=tuple(Example(e.question, e.answer) for e in data.examples), **fields)


def completion_from_messages(messages: Sequence[Mapping[str, str]]) -> str:
    """Chat messages in completion form, for a base model asked by a caller that has no template at hand.

    A lone user message that is already in completion form (it ends with an answer label, as `Runtime` sends a
    base model `render_completion`'s text) is kept as it is; otherwise the system prompt leads, each
    user/assistant turn becomes a question/answer pair and the text ends where the last answer starts.
    """
    answer_labels = tuple(labels[2] for labels in COMPLETION_LABELS.values())
    if len(messages) == 1 and messages[0]["role"] == "user" and messages[0]["content"].endswith(answer_labels):
        return messages[0]["content"]
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    _, q, a = COMPLETION_LABELS["zh" if is_cjk(last) else "en"]
    space = " " if a.endswith(":") else ""
    parts = []
    for m in messages:
        if m["role"] == "system":
            parts.append(m["content"])
        elif m["role"] == "user":
            parts.append(f"{q}{m['content']}")
        else:
            parts.append(f"{a}{space}{m['content']}")
    return "\n".join([*parts, a])


def language_instruction(question: str) -> str | None:
    """What a prompt adds so that the answer comes in the question's language: Chinese, for a Chinese question.

    Templates and few-shot examples are usually English, and a model tends to answer in the language
    of most of its prompt; the line goes last in the user message, where small models heed it most.
    """
    return ANSWER_IN_CHINESE if is_cjk(question) else None


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _ExampleFile(_Strict):
    question: str
    answer: str


class _TemplateFile(_Strict):
    """A template as stored and exported: strict types, unknown keys refused."""

    name: str
    system: str
    user: str
    examples: tuple[_ExampleFile, ...] = ()
    source_format: str = DEFAULT_SOURCE_FORMAT
    description: str = ""
    version: int = 0
    saved: str = ""
    source_separator: str = DEFAULT_SOURCE_SEPARATOR


def _problems(e: ValidationError) -> str:
    """Pydantic's errors as `field: what is wrong`, e.g. `examples.0.question: Input should be a valid string`."""
    parts = []
    for err in e.errors(include_url=False):
        where = ".".join(str(x) for x in err["loc"]) or "the file"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def fields_of(text: str) -> set[str]:
    """The variable names a template uses.

    Raises:
        TemplateError: positional fields, attribute or index access, conversions or format specs.
    """
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise TemplateError(f"unbalanced braces ({e}); write {{{{ and }}}} for literal braces") from e
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name == "" or field_name.isdigit():
            raise TemplateError("positional fields like {} or {0} are not allowed; use a name such as {question}")
        if not field_name.isidentifier():
            raise TemplateError(f"{{{field_name}}} is not allowed: only plain names, no attribute or index access")
        if spec or conversion:
            raise TemplateError(f"{{{field_name}}} may not have a conversion or format spec")
        names.add(field_name)
    return names


def _safe_fields(text: str, default: set[str] | None = None) -> set[str]:
    """The fields of `text`, or `default` when it does not parse (that problem is reported on its own)."""
    try:
        return fields_of(text)
    except TemplateError:
        return set() if default is None else default


def fill(text: str, values: Mapping[str, str]) -> str:
    """Substitute plain-name fields from `values`; never evaluates anything."""
    missing = fields_of(text) - set(values)
    if missing:
        raise TemplateError(f"Missing value(s) for {_braced(missing)}.")
    out = []
    for literal, field_name, _, _ in string.Formatter().parse(text):
        out.append(literal)
        if field_name is not None:
            out.append(values[field_name])
    return "".join(out)


def _stems(text: str) -> set[str]:
    # Five-letter prefixes stand in for stems: "founded" meets "founder", "lockers" meets "locker".
    return {w[:5] for w in _WORD.findall(text.lower()) if w not in _QUESTION_WORDS}


def sentences(text: str) -> list[str]:
    """The sentences of a chunk, with the lines a PDF's layout wrapped joined again.

    A line joins the one before when it continues it: it starts in lower case, or the line before
    is a long one that stops mid-sentence. List items, numbered steps, headings and table rows stay
    lines of their own. A fragment of one or two words ("Self-Use.") goes with the sentence after it,
    which it names, or at a line's end with the one before ("rev. F").
    """
    lines: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        prev = lines[-1] if lines else ""
        if not line:
            if prev:
                lines.append("")
            continue
        continues = (
            bool(prev)
            and not _LINE_START.match(line)
            and (
                line[0].islower()
                or line[0] in "，、,;；)）"
                or (len(prev) >= _WRAP_WIDTH and not prev.endswith(_LINE_END))
            )
        )
        if continues:
            lines[-1] = prev + line if is_cjk(prev[-1]) or is_cjk(line[0]) else f"{prev} {line}"
        else:
            lines.append(line)
    out: list[str] = []
    for line in filter(None, lines):
        merged: list[str] = []
        for part in filter(None, (p.strip() for p in SENTENCE_BREAK.split(line))):
            if merged and _fragment(merged[-1]):
                merged[-1] = f"{merged[-1]} {part}"
            else:
                merged.append(part)
        if len(merged) > 1 and _fragment(merged[-1]):  # "rev. F": the last piece ends the sentence before it
            merged[-2:] = [f"{merged[-2]} {merged[-1]}"]
        out += merged
    return out


def _fragment(sentence: str) -> bool:
    return not is_cjk(sentence) and len(sentence.split()) < 3


def excerpt(text: str, question: str, n: int = EXCERPT_SENTENCES) -> str:
    """The `n` sentences of `text` that best match the question, each with the sentence after it, in text order.

    A sentence scores the question's words it shares, each weighted by 1 / the number of the chunk's
    sentences that hold it (a word in every sentence, like the company's name, picks none out). The
    next sentence comes along because the fact often follows the sentence naming the subject. A 135M
    model reads these far better than whole 800-character chunks (bench/quality.py). Sentences are
    `sentences`: a PDF's wrapped lines joined again (on the held-out PDF manual the excerpts then hold
    the answer for 16 of 20 questions instead of 13).
    """
    parts = sentences(text)
    stems = [_stems(p) for p in parts]
    held = Counter(w for s in stems for w in s)
    wanted = _stems(question)

    def score(i: int) -> float:
        return sum(1 / held[w] for w in wanted & stems[i])

    best = sorted(range(len(parts)), key=lambda i: (-score(i), i))[:n]
    keep = set(best) | {i + 1 for i in best if i + 1 < len(parts)}
    return " ".join(parts[i] for i in sorted(keep))


def _braced(names: Any) -> str:
    return ", ".join("{" + n + "}" for n in sorted(names))


_RAG_BUILTIN = PromptTemplate(
    name="RAG with citations",
    description=(
        "Retrieval: the sentences of each retrieved chunk that best match the question, unnumbered and run together "
        "as one text, then the question; the model copies the sentence that answers it, and the chunks it read are "
        "its citations."
    ),
    system="",
    user="Text:\n{context}\n\nQuestion: {question}\n\nCopy the sentence of the text that answers the question.",
    source_format="{excerpt}",
    source_separator=" ",
)

BUILTINS: tuple[PromptTemplate, ...] = (
    PromptTemplate(
        name="Few-shot assistant",
        description="Prompt engineering: a system prompt and worked examples, no retrieval.",
        system=(
            "You are the knowledge-base assistant of a company. Answer in one or two short sentences. "
            "If you do not know the answer, say so."
        ),
        user="{question}",
        examples=(
            Example("What is the capital of France?", "Paris."),
            Example("How many days are in a leap year?", "366 days."),
        ),
    ),
    _RAG_BUILTIN,
    PromptTemplate(
        name="Plain question",
        description="The question alone: what a fine-tuned model is trained on.",
        system="You are the knowledge-base assistant of a company. Answer in one or two short sentences.",
        user="{question}",
    ),
)


# Earlier texts of the built-ins: a library whose latest version of a built-in is one of these, unedited,
# gets the current text as its next version (an edited one is the user's and stays).
RETIRED_BUILTINS: tuple[PromptTemplate, ...] = (
    replace(_RAG_BUILTIN, source_separator=DEFAULT_SOURCE_SEPARATOR),
    PromptTemplate(
        name="RAG with citations",
        description=(
            "Retrieval: the sentences of each retrieved chunk that best match the question, unnumbered, then the "
            "question; the model answers plainly and the chunks it read are shown as its citations."
        ),
        system="",
        user="Read the text and answer the question with a full sentence.\n\nText:\n{context}\n\nQuestion: {question}",
        source_format="{excerpt}",
    ),
    PromptTemplate(
        name="RAG with citations",
        description="Retrieval: numbered sources in the prompt; the answer cites them like [1].",
        system=(
            "You answer questions using only the numbered sources given. Answer in one or two short "
            "sentences and cite the sources you used like [1]. If the sources do not contain the answer, "
            "say that you do not know."
        ),
        user="Sources:\n{context}\n\nQuestion: {question}",
    ),
)


def _same_text(a: PromptTemplate, b: PromptTemplate) -> bool:
    return (a.system, a.user, a.examples, a.source_format, a.source_separator) == (
        b.system,
        b.user,
        b.examples,
        b.source_format,
        b.source_separator,
    )


class TemplateLibrary:
    """Templates under DATA_DIR/templates/<slug>/v<version>.json; saving makes a new version."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        for template in BUILTINS:
            if not self.versions(template.name):
                self.save(template)
                continue
            latest = self.get(template.name)
            if any(r.name == template.name and _same_text(r, latest) for r in RETIRED_BUILTINS):
                self.save(template)

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise TemplateError(
                f"{name!r} is not a valid template name; use up to 64 letters, digits, spaces, '-' or '_'."
            )
        return self.root / _FOLDER_SEP.sub("_", name.strip().lower())

    def names(self) -> list[str]:
        names = []
        for folder in sorted(self.root.iterdir()):
            latest = self._latest_file(folder)
            if latest is not None:
                names.append(PromptTemplate.from_json(latest.read_text(encoding="utf-8")).name)
        return names

    def versions(self, name: str) -> list[int]:
        folder = self._dir(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.stem[1:]) for p in folder.glob("v*.json") if p.stem[1:].isdigit())

    @staticmethod
    def _latest_file(folder: Path) -> Path | None:
        files = [p for p in folder.glob("v*.json") if p.stem[1:].isdigit()]
        return max(files, key=lambda p: int(p.stem[1:])) if files else None

    def get(self, name: str, version: int | None = None) -> PromptTemplate:
        versions = self.versions(name)
        if not versions:
            raise TemplateError(f"No template named {name!r}; pick one from the Prompts page.")
        chosen = versions[-1] if version is None else version
        path = self._dir(name) / f"v{chosen}.json"
        if not path.is_file():
            raise TemplateError(f"Template {name!r} has no version {version}; versions: {versions}.")
        return PromptTemplate.from_json(path.read_text(encoding="utf-8"))

    def save(self, template: PromptTemplate) -> PromptTemplate:
        """Validate and store as the next version (earlier versions stay)."""
        template.validate()
        folder = self._dir(template.name)
        # Names differing only in case, spaces or '_' share a folder: never let one overwrite the other.
        latest = self._latest_file(folder) if folder.is_dir() else None
        if latest is not None:
            existing = PromptTemplate.from_json(latest.read_text(encoding="utf-8")).name
            if existing != template.name:
                raise TemplateError(
                    f"{template.name!r} is too close to the existing template {existing!r} (names differ only in "
                    f"case, spaces or '_'); save under {existing!r} to make a new version of it, or pick another name."
                )
        while True:
            version = (self.versions(template.name) or [0])[-1] + 1
            stored = replace(template, version=version, saved=now_iso())
            # Exclusive: if another session took this version number first, take the next one.
            if atomic_write_text(folder / f"v{version}.json", stored.to_json(), exclusive=True):
                return stored

    def diff(self, name: str, old: int, new: int) -> str:
        """A unified diff of two versions, field by field."""
        a, b = self.get(name, old), self.get(name, new)
        return "".join(
            difflib.unified_diff(
                _diffable(a).splitlines(keepends=True),
                _diffable(b).splitlines(keepends=True),
                fromfile=f"{name} v{old}",
                tofile=f"{name} v{new}",
            )
        )


def _diffable(t: PromptTemplate) -> str:
    examples = "".join(f"Q: {e.question}\nA: {e.answer}\n" for e in t.examples)
    return (
        f"# system\n{t.system}\n# user\n{t.user}\n# source format\n{t.source_format}\n"
        f"# between sources\n{t.source_separator!r}\n# examples\n{examples}"
        f"# description\n{t.description}\n"
    )
