"""Prompt templates: named variables only, rendered by a restricted formatter (versions: `core.template_library`).

A template has a system prompt, optional few-shot examples, a user template with `{question}`
(and `{context}` for retrieval, `{examples}` to place examples as text), and a source format
that decides how retrieved chunks are listed and numbered (`{n}`, `{source}`, `{page}`,
`{heading}`, `{text}`, `{excerpt}`: the chunk's sentences that share most words with the
question). Rendering never calls `str.format`: fields are looked up by plain
name, so `{question.__class__}` or `{context[0]}` is an error, not a leak.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import TemplateError
from core.excerpts import excerpt
from core.text import is_cjk

TEMPLATE_VARIABLES = frozenset({"question", "context", "examples"})
SOURCE_VARIABLES = frozenset({"n", "source", "page", "heading", "text", "excerpt"})
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
        parts = [f"{q}{ex.question}\n{a}{completion_answer(a, ex.answer)}" for ex in self.examples]
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
    """Chat messages in completion form, as `PromptTemplate.render_completion` writes a template's.

    A lone user message that is already in completion form (it ends with an answer label, as `Runtime` sends a
    base model `render_completion`'s text) is kept as it is; otherwise, as in `render_completion`, the system
    prompt is left out (a base model follows no instructions), each user/assistant turn becomes a
    question/answer pair and the text ends where the last answer starts. Training on a base model and its
    parity check build their prompts here, so they are the prompts the FT strategy serves it.
    """
    answer_labels = tuple(labels[2] for labels in COMPLETION_LABELS.values())
    if len(messages) == 1 and messages[0]["role"] == "user" and messages[0]["content"].endswith(answer_labels):
        return messages[0]["content"]
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    _, q, a = COMPLETION_LABELS["zh" if is_cjk(last) else "en"]
    parts = []
    for m in messages:
        if m["role"] == "user":
            parts.append(f"{q}{m['content']}")
        elif m["role"] == "assistant":
            parts.append(f"{a}{completion_answer(a, m['content'])}")
    return "\n".join([*parts, a])


def completion_answer(prompt: str, answer: str) -> str:
    """The answer as a base model writes it after a completion-form prompt, on one line.

    " Paris." after "Answer:" (the space belongs to the answer's first token), "巴黎。" after "答案：".
    """
    return (" " if prompt.endswith(":") else "") + " ".join(answer.split("\n"))


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


def _braced(names: Any) -> str:
    return ", ".join("{" + n + "}" for n in sorted(names))
