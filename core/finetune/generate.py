"""Question/answer pairs drawn from a knowledge base, for review before training.

Questions a user would ask, built by rules from each sentence's structure, not by the chat model:
the embedded 135M model writes unusable questions (asked to write a question for "The HX4 pump must
be recalibrated every six months", it repeats the sentence). A sentence is split into its subject,
its verb group and the rest; a recognised span of the rest (a frequency, a time, a duration, a
quantity, a place, an identifier, the agent of a passive) becomes the short answer and its kind the
question word: "How often must the HX4 pump be recalibrated?" -> "every six months". Each pair keeps
the sentence as its evidence. A sentence whose subject needs its context ("It", "This"), or that no
rule fits, gives no pair: no question beats a nonsensical one. The page shows every pair in an
editable table before anything is saved. On the sample knowledge bases (bench/questions.py):
brackenridge 50 of 254 sentences give 56 pairs, corvane 24 of 67 give 26. On a real manual (the
Debian Reference, bench/pairs.py) 85% of the pairs are well-formed by hand labels (32% before the
rules that drop a cut name, a pointer to the text around, a vague or back-referring answer, a
"Where" answered by the manual's own topic, and a subject that needs the sentence before).

When an Ollama model answers, `pairs_written_by` has it write the questions instead, one call per
chunk, keeping only the pairs whose answer is written in the sentence they name.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence, Set
from pathlib import PurePath

from core.finetune.answer_spans import find_spans
from core.finetune.clauses import (
    DAYS,
    DETERMINERS,
    DIMENSION,
    ENDS_BADLY,
    MONTHS,
    PERSONAL,
    PRONOUNS,
    QUANTIFIERS,
    THIRD,
    Clause,
    Span,
    parse_clause,
    sentences,
)
from core.finetune.datasets import Pair
from core.finetune.zh_questions import chinese, questions_zh
from core.models import ModelCatalog
from core.progress import CancelFlag, Progress
from core.samples import load_questions
from core.store import SearchHit, Store
from core.text import HANGUL, KANA, is_cjk

log = logging.getLogger(__name__)


def _subject_in_question(subject: str, proper: set[str]) -> str:
    """The subject as it reads mid-sentence: "The HX4 pump" -> "the HX4 pump", "Brackenridge" kept."""
    first, _, tail = subject.partition(" ")
    keep = (
        first.lower() not in DETERMINERS
        and not (first.endswith("ing") and not tail[:1].isupper())
        and (
            first in proper
            or re.fullmatch(rf"(?:{DAYS}|{MONTHS})s?", first) is not None
            or re.search(r"[A-Z].*[A-Z]|\d", first) is not None
            or (tail[:1].isupper() and not proper)
            or first.isupper()
            or (bool(tail) and all(w[:1].isupper() for w in tail.split()))  # a name: "Common Internet File System"
        )
    )
    return subject if keep else f"{first[:1].lower()}{first[1:]} {tail}".strip()


def _question(clause: Clause, span: Span, others: Sequence[Span], proper: set[str]) -> str | None:
    """Put the span's question word first and the rest, less every adjunct span, after the verb."""
    # What follows the first span is dropped: more adjuncts, or a clause the question need not carry.
    first = min([span.start, *(o.start for o in others)])
    remainder = " ".join(clause.rest[:first].split()).strip(" ,")
    if (
        ENDS_BADLY.search(remainder)
        or len(remainder.split()) > 10
        or re.search(r"[,;:\"“”„]", remainder)
        or re.search(r"\b(?:it|them|they|this|that|these|those|he|she|him|her|such)\b", remainder)
    ):
        return None
    subject = _subject_in_question(clause.subject, proper) if clause.subject else ""
    tail = clause.rest[span.end :].strip()
    purpose = tail if span.start == first and re.fullmatch(r"to [a-z]+(?: [\w-]+){0,4}", tail) else ""
    parts = [span.wh, clause.aux, subject, clause.verb, remainder, span.strand, purpose]
    if clause.copula and not clause.verb and span.wh.startswith(("How long", "How much", "How many", "How ")):
        parts = [span.wh, clause.aux, subject, remainder, span.strand, purpose]
    text = " ".join(p for p in parts if p)
    text = re.sub(r"\s+", " ", text).strip()
    if clause.copula and not clause.verb and not remainder and not span.strand and span.wh in {"When", "Where"}:
        return None  # "Where is the head office?" needs no verb, but "When is X" alone is vague
    return text[0].upper() + text[1:] + "?"


# "The less(1) command is the enhanced pager.", "who(1) shows who is logged on.": a named thing opening a sentence is
# asked by putting "Which <kind>" in its place, the words after it unchanged (English keeps a subject question's
# order): "Which command is the enhanced pager?" -> less(1).
KIND_NOUNS = "command|package|file|program|tool|option|variable|directory|daemon|utility|library|module|service"
_NAMED_SUBJECT = re.compile(
    r"^(?:The )?[”\"“]?(?P<name>[A-Za-z0-9_./~$+-]+?(?P<man>\(\d\))?)[”\"“]?"
    rf" (?:(?P<kind>{KIND_NOUNS}) )?(?P<rest>(?:can|may|will|must|should|is|was|[a-z]+s)\b[^;:]*)\.$"
)
_POINTS_AWAY = re.compile(
    r"\b(?:it|its|they|them|their|this|that|these|those|such|above|below|following|former|latter|here|also|too"
    r"|see|Table|Section|Figure|Chapter)\b|\.\.",
    re.I,
)
_MAN_KINDS = {"1": "command", "6": "command", "8": "command", "5": "file"}  # 7 is an overview, 3 a function


def named_things(texts: Iterable[str]) -> set[str]:
    """Words the text writes as names of commands: "aptitude(8)" anywhere makes "The aptitude command" a name."""
    return {m.group(1) for text in texts for m in re.finditer(r"\b([a-z][A-Za-z0-9_.+-]*)\(\d\)", text)}


def named_subject(sentence: str, names: Set[str] = frozenset()) -> tuple[str, str] | None:
    """("Which command …?", name) for a sentence whose subject is a named command, package, file…; else None.

    The name must read as one: a manual page ("who(1)"), a path, a word with a digit, dot, hyphen or underscore
    ("bash-completion"), or a word the text writes as a name elsewhere (`named_things`: "aptitude" for
    aptitude(8)). "The dummy package" is an ordinary noun phrase and gives nothing.
    """
    m = _NAMED_SUBJECT.match(sentence)
    if m is None:
        return None
    name, man, rest = m.group("name"), m.group("man"), m.group("rest")
    kind = m.group("kind") or (_MAN_KINDS.get(man[1]) if man else None)
    if kind is None or not 3 <= len(rest.split()) <= 20 or _POINTS_AWAY.search(rest):
        return None
    if not (man or re.search(r"[\d/._$~+-]", name) or name in names) or len(name) < 2:
        return None
    return f"Which {kind} {rest}?", name


def questions_for(sentence: str, *, proper: Iterable[str] = (), topic: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(question, short answer) pairs for one sentence; none when no rule fits.

    Args:
        proper: words known to be proper nouns (seen capitalised mid-sentence), kept capitalised
            when they open the subject.
        topic: names the whole text is about (`topic_words`), which answer no "Where" question.
    """
    labelled = _labelled(sentence, set(proper))
    if labelled:
        return [labelled]
    words = sentence.split()
    if not 4 <= len(words) <= 45 or sentence[-1:] not in ".!":
        return []
    clause = parse_clause(sentence)
    if clause is None:
        return []
    clauses = [clause]
    # "The housing is made of titanium and is rated to 120 metres": two clauses with one subject.
    second = re.search(
        rf"(?:,? and|;) (?=(?:is|are|was|were|must|may|can|should|will|has|have|{THIRD})\b)", clause.rest
    )
    if second and clause.subject:
        clauses = [
            Clause(clause.subject, clause.aux, clause.verb, clause.rest[: second.start()], clause.passive,
                   clause.copula, clause.lemma),
        ]  # fmt: skip
        again = parse_clause(f"{clause.subject} {clause.rest[second.end() :]}")
        if again:
            clauses.append(again)
    known = set(proper)
    out: list[tuple[str, str]] = []
    for c in clauses:
        if not c.subject and not c.verb.startswith("you"):
            continue
        if c.subject and (not _good_subject(c.subject) or _disagrees(c)):
            continue
        # The rest up to its first comma: a list cut there would give a partial answer, so a span
        # that ends where a list goes on is dropped.
        cut = re.split(r"[;:,](?:\s|$)| - ", c.rest)[0].strip()
        listed = len(cut) < len(c.rest) and re.match(r",[\w' -]+(?:,| and | or )", c.rest[len(cut) :]) is not None
        c = Clause(c.subject, c.aux, c.verb, cut, c.passive, c.copula, c.lemma)
        spans = find_spans(c.rest, c, frozenset(topic))
        for span in _distinct(spans):
            if listed and span.end >= len(c.rest) and span.wh.split()[-1] not in DIMENSION.split("|"):
                continue
            question = _question(c, span, spans, known)
            if question and _answer_stands(span.answer, question) and all(question != q for q, _ in out):
                out.append((question, span.answer))
    return out


_BACK_REFERENCES = {"me", "him", "her", "them", "it", "its", "their", "his", "my"}  # "your manager" is fine
_VAGUE = {"several", "various", "some", "many", "multiple", "different", "certain"}


def _answer_stands(answer: str, question: str) -> bool:
    """An answer that is whole and says something on its own, to a question that needs no other sentence.

    Not: a pronoun or a possessive ("me", "its name": who or whose depends on the text around it), a vague
    quantity ("several methods"), a pointer to the text around it ("the following", "as described"), or a
    phrase cut before its complement ("variables stored [in NVRAM]", "the URL appended [with dists]").
    """
    words = answer.lower().split()
    if not words or words[0] in _BACK_REFERENCES or (len(words) <= 2 and words[0] in _VAGUE):
        return False
    pointer = r"\b(?:the following|as follows|(?:see|as|shown|described|listed) (?:above|below)|(?:above|below)\W*$)"
    if re.search(pointer, answer, re.IGNORECASE) or re.search(pointer, question, re.IGNORECASE):
        return False
    last, idiom = words[-1], re.search(r"\b(?:every|each|per) \w+ \w+ed$", answer)  # "for every hour worked"
    cut = last in {"described", "shown", "explained"} or re.fullmatch(r"\w{3,}[^e]ed", last)
    return not (len(words) > 1 and cut and not idiom)


_PLURAL_HEADS = {"people", "staff", "data", "children", "men", "women", "media", "criteria", "police", "series"}


def _disagrees(clause: Clause) -> bool:
    """A plural verb after a singular head ("The integrity of all files are verified"): a sentence not to copy."""
    head = re.split(r" (?:of|in|on|at|to|by|for|with|from|outside|inside|under|within|between)\b", clause.subject)
    head_word = head[0].split()[-1].lower()
    plural = head_word.endswith("s") or head_word in _PLURAL_HEADS
    return clause.aux in {"are", "were"} and head_word.isalpha() and not plural


def _labelled(sentence: str, proper: set[str]) -> tuple[str, str] | None:
    """A contact line, "Basin manager: Oskar Lindqvist." -> ("Who is the basin manager?", "Oskar Lindqvist")."""
    parts = sentence.rstrip(".").split(": ")
    if len(parts) < 2:
        return None
    label, value = parts[-2].split(", ")[0].strip(), parts[-1].split(", ")[0].strip()
    if not re.fullmatch(r"[A-Za-z][\w-]*(?: [\w-]+){0,3}", label) or label.lower().startswith(
        ("new", "fixed", "changed")
    ):
        return None
    label = _subject_in_question(label, proper)
    the = "the "
    if m := re.fullmatch(r"(?:internal )?(?P<noun>extension|phone|phone number) (?P<id>[\d +-]+)", value):
        return f"What is {the}{label}'s {m.group('noun')}?", m.group("id").strip()
    if re.fullmatch(r"[A-Z][a-z]+(?: [A-Z][a-z]+){1,2}", value) and PERSONAL.search(label):
        return f"Who is {the}{label}?", value
    return None


def _good_subject(subject: str) -> bool:
    words = subject.split()
    return (
        1 <= len(words) <= 8
        and (words[0].lower() not in PRONOUNS or (len(words) > 1 and words[0].lower() in QUANTIFIERS))
        and not re.search(
            r"[\"“”‘,;:]|^'|'$|\b(?:which|who|that|whose|you|we|they|it|i|he|she|if|when|while|because|unless|although|"
            r"whether)\b",
            subject[:1].lower() + subject[1:],
        )
        and not (len(words) == 2 and words[0].lower() == "the" and words[1].lower() in _GENERIC)
        and not (len(words) == 1 and words[0].lower() in DETERMINERS)
        and words[0].lower() not in _ANAPHORIC
        and not any(w in {"These", "This", "Those", "Such"} for w in words[1:])  # text glued mid-sentence
    )


# A subject that opens with these points at a text before it: "Similar system on the memory", "First 4 types".
_ANAPHORIC = {"similar", "such", "same", "following", "above", "below", "first", "last", "next", "previous", "former",
              "latter", "further"}  # fmt: skip


_GENERIC = {
    "default", "rest", "result", "change", "review", "process", "first", "second", "last", "other", "same",
    "following", "above", "below", "answer", "exception", "version", "value", "limit", "total", "maximum",
    "minimum", "topic", "reason", "idea", "goal", "aim", "point", "problem", "issue", "fix", "feature", "case",
}  # fmt: skip


def _distinct(spans: Sequence[Span]) -> list[Span]:
    """Overlapping spans: the first (longest at its start) wins."""
    out: list[Span] = []
    for s in spans:
        if all(s.start >= o.end or s.end <= o.start for o in out):
            out.append(s)
    return out


def proper_words(texts: Iterable[str]) -> set[str]:
    """Words written capitalised mid-sentence and never in lower case: names that stay capitalised.

    "Brackenridge employs..." keeps its capital in a question; "Support is reached..." does not.
    """
    found: set[str] = set()
    lower: set[str] = set()
    for text in texts:
        flat = " ".join(text.split())
        found.update(m.group(1) for m in re.finditer(r"(?<![.!?:]\s)(?<=\s)([A-Z][\w-]+)", flat))
        lower.update(re.findall(r"(?<![@.\w])[a-z][\w-]+\b(?![@]|\.\w)", flat))
    return {w for w in found if w.lower() not in lower}


TOPIC_SHARE = 0.03  # a capitalised word in 3% of the sentences or more is what the text is about


def topic_words(found: Sequence[str]) -> set[str]:
    """Capitalised words that many sentences name: "Debian" in the Debian Reference (in 15% of its sentences)."""
    counts: Counter[str] = Counter(w for s in set(found) for w in set(re.findall(r"\b[A-Z][\w/-]+", s)))
    least = max(5, TOPIC_SHARE * len(set(found)))
    return {w for w, n in counts.items() if n >= least}


def pairs_from_hits(hits: Iterable[SearchHit], *, limit: int = 200) -> list[Pair]:
    """Questions with a short answer and its sentence as evidence, in reading order, each sentence once.

    English sentences go through the English rules (`questions_for`, `named_subject`), Chinese ones through the
    Chinese (`zh_questions.questions_zh`). A question drawn twice with different answers ("Which command can replace
    all instances of …?": ed(1), sed(1); "哪个命令是一个屏幕编辑器？": vim(1), emacs(1)) asks nothing one answer
    settles, so neither is kept: every sentence is read before the first `limit` pairs are returned, since a later
    sentence can drop an earlier pair.
    """
    hits = list(hits)
    split = [sentences(h.text) for h in hits]  # each chunk's sentences, split once
    proper = proper_words(s for found in split for s in found)
    topic = topic_words([s for found in split for s in found])
    names = named_things(h.text for h in hits)
    seen: set[str] = set()
    answers: dict[str, str] = {}  # each question drawn, and its answer
    ambiguous: set[str] = set()
    out: list[Pair] = []
    for found in split:
        for sentence in found:
            if sentence in seen:
                continue
            seen.add(sentence)
            zh = chinese(sentence)
            drawn = questions_zh(sentence) if zh else questions_for(sentence, proper=proper, topic=topic)
            if not zh and (subject := named_subject(sentence, names)):
                drawn = [subject, *drawn]
            for question, answer in drawn:
                key = question.casefold()
                if key in answers:
                    if answers[key].casefold() != answer.casefold():
                        ambiguous.add(key)
                    continue
                answers[key] = answer
                out.append(Pair(question, answer, evidence=sentence))
    return [p for p in out if p.question.casefold() not in ambiguous][:limit]


GLUED_WORDS_PER_SENTENCE = 60  # above this, sentence ends are missing: text glued by PDF extraction
OTHER_WAYS = (
    "upload question/answer pairs (CSV or JSONL) instead, or have an Ollama model write the questions (offered "
    "here when Ollama is reachable)"
)


NOT_FOR_JAPANESE = (
    "Drawing questions from Japanese or Korean text is not supported yet: the rules read English and Chinese "
    "sentences. To fine-tune on it, have an Ollama model write the questions (offered here when Ollama is "
    "reachable), or write question/answer pairs yourself in a CSV or JSONL file and load it under Upload JSONL/CSV."
)
ENGLISH_RULES = (
    "Sentences that state a fact become the questions a reader would ask (how often, when, where, who, how "
    "many…), each answered by a short part of its sentence; sentences that give no sensible question are skipped. "
    "Review and edit them below before training."
)
CHINESE_KINDS = (
    "Chinese sentences are asked where they hold a count (多少人), a frequency (多久), a year (哪一年), a place "
    "after 位于 (哪里), or a command, file or package named in Latin script (什么命令, 什么文件)"
)
CHINESE_RULES = (
    f"{CHINESE_KINDS}: the span is replaced by its question word, as Chinese asks. Sentences that need the text "
    "around them (它, 这, 参见…) are skipped. Review and edit the pairs below before training."
)


def no_pairs_reason(hits: Sequence[SearchHit]) -> str:
    """Why `pairs_from_hits` drew no question from these chunks, and what to do instead."""
    if not hits:
        return "This knowledge base has no documents yet: add some on the Documents page."
    text = " ".join(h.text for h in hits)
    found = [s for h in hits for s in sentences(h.text)]
    if is_cjk(text):
        if re.search(f"[{KANA}{HANGUL}]", text):
            return NOT_FOR_JAPANESE
        return (
            f"None of its {len(found):,} sentences fits a rule: {CHINESE_KINDS}. Use another document, or {OTHER_WAYS}."
        )
    words = len(text.split())
    if not found or words / len(found) > GLUED_WORDS_PER_SENTENCE:
        return (
            f"Its text has almost no sentence ends ({len(found)} sentence{'' if len(found) == 1 else 's'} in "
            f"{words:,} words), as when a PDF's text "
            "comes out glued together: the rules need whole sentences. Upload the document as text, HTML or "
            f"Markdown if you have it, or {OTHER_WAYS}."
        )
    return (
        f'None of its {len(found):,} sentences fits a rule: the rules turn plain statements of fact ("The warranty '
        'lasts two years.") into questions, and skip lists, commands, tables and headings rather than guess. '
        f"Use another document, or {OTHER_WAYS}."
    )


def kb_hits(store: Store, kb: str) -> list[SearchHit]:
    """Every chunk of every document in the knowledge base, in reading order."""
    return [h for doc in store.list_documents(kb) for h in store.chunks_of(kb, doc.doc_id)]


def pairs_from_kb(store: Store, kb: str, *, limit: int = 200) -> list[Pair]:
    """Questions drawn from every document in the knowledge base, in reading order."""
    return pairs_from_hits(kb_hits(store, kb), limit=limit)


WRITER_SYSTEM = (
    "You turn the numbered sentences of a document into the questions its readers would ask. For each "
    "sentence that states a fact, write one short question that someone who has not read the document would "
    "ask, that the sentence answers, and that makes sense on its own (name the thing; no 'it' or 'this'). "
    "Give the shortest answer, copied word for word from the sentence. Skip sentences that answer nothing "
    'useful. Reply with JSON only: {"pairs": [{"sentence": 1, "question": "...", "answer": "..."}]}'
)


def pairs_written_by(
    catalog: ModelCatalog,
    model_id: str,
    hits: Iterable[SearchHit],
    *,
    limit: int = 200,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> list[Pair]:
    """Questions written by a chat model (an Ollama one: the embedded 135M model cannot), one call per chunk.

    A pair is kept only if its answer is written in the sentence it names, so an invented answer or a
    sentence number out of range is dropped rather than shown. Each pair keeps its sentence as evidence.

    Raises:
        ModelError: the model failed or could not be reached; pairs written before are lost with it.
    """
    chunks = [(hit, [s for s in sentences(hit.text) if len(s.split()) >= 4]) for hit in hits]
    chunks = [(hit, found) for hit, found in chunks if found]
    seen: set[str] = set()
    out: list[Pair] = []
    for done, (hit, found) in enumerate(chunks):
        if (cancel is not None and cancel.is_set()) or len(out) >= limit:
            break
        if progress is not None:
            progress(done, len(chunks), f"Writing questions for {hit.filename}, part {hit.chunk_index + 1}")
        numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(found, start=1))
        messages = [
            {"role": "system", "content": WRITER_SYSTEM},
            {"role": "user", "content": f"Document: {PurePath(hit.filename).stem}\n\n{numbered}"},
        ]
        try:
            prepared = catalog.prepare(model_id, messages, temperature=0.0, max_tokens=1024)
            reply = prepared.chat.invoke(messages).content
        except Exception as e:  # noqa: BLE001 - httpx, ollama and langchain errors alike
            raise catalog.translate(model_id, e) from e
        for question, answer, sentence in _written_pairs(str(reply), found):
            if question.casefold() not in seen:
                seen.add(question.casefold())
                out.append(Pair(question, answer, evidence=sentence))
    if progress is not None:
        progress(len(chunks), len(chunks), f"{len(out)} questions written")
    return out[:limit]


def _written_pairs(reply: str, numbered: Sequence[str]) -> list[tuple[str, str, str]]:
    """The (question, answer, sentence) rows of a writer's JSON reply that hold up; the rest are dropped."""
    start, end = reply.find("{"), reply.rfind("}")
    try:
        data = json.loads(reply[start : end + 1]) if 0 <= start < end else {}
    except json.JSONDecodeError:
        log.info("The question writer's reply is not JSON: %.200s", reply)
        return []
    rows = data.get("pairs") if isinstance(data, dict) else None
    out: list[tuple[str, str, str]] = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        number, question, answer = row.get("sentence"), row.get("question"), row.get("answer")
        if not (isinstance(number, int) and 1 <= number <= len(numbered)):
            continue
        if not (isinstance(question, str) and isinstance(answer, str)):
            continue
        question, answer = " ".join(question.split()), " ".join(answer.split()).strip(" .")
        sentence = numbered[number - 1]
        if len(question) < 8 or not answer or answer.casefold() not in sentence.casefold():
            continue
        out.append((question if question.endswith("?") else question + "?", answer, sentence))
    return out


def sample_pairs() -> list[Pair]:
    """The sample question set's answers: facts about the fictional company no model knows in advance."""
    return [Pair(q.question, q.answer) for q in load_questions()]
