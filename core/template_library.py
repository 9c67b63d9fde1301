"""The template library: the built-in templates, and every template's versions under DATA_DIR/templates."""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from pathlib import Path

from core.errors import TemplateError
from core.files import atomic_write_text, now_iso
from core.prompts import DEFAULT_SOURCE_SEPARATOR, Example, PromptTemplate

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,63}$")
_FOLDER_SEP = re.compile(r"[ _]+")


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
