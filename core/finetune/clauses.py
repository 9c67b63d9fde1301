"""A sentence taken apart for question writing: which lines of a chunk are sentences, then subject, verb, rest.

The vocabulary the rules read (numbers, units, dates, verb forms) is here too; `core.finetune.answer_spans`
finds the parts of a clause's rest that answer a question word, and `core.finetune.generate` writes the pairs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.text import HAN
from core.text import sentences as text_sentences

MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_WORD_NUMBERS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|a dozen|"
    "a hundred|a thousand"
)
NUM = rf"(?:(?:\d+(?:[.,:]\d+)*|(?:{_WORD_NUMBERS})(?:[- ](?:{_WORD_NUMBERS}))?)(?: (?:million|billion|thousand))?)"
QMOD = (
    r"(?:up to|about|around|approximately|roughly|at least|at most|more than|less than|over|under|"
    r"nearly|almost|only|exactly|a maximum of|a minimum of|a total of|some)"
)
TIME_UNIT = r"(?:second|minute|hour|day|working day|calendar day|week|month|year)s?"
MONEY_UNIT = r"(?:euros?|dollars?|pounds?|EUR|USD|GBP|cents?|yuan|yen)"
MEASURE_UNIT = (
    r"(?:(?:square |cubic )?(?:milli|centi|kilo)?met(?:re|er)s?|(?:kilo)?grams?|kg|km|cm|mm|litres?|liters?|"
    r"percent|per cent|%|watts?|volts?|degrees(?: Celsius)?|bar|metres per second)"
)
PER = (
    r"(?: (?:per|a|an|each) (?:[a-z-]+ )?(?:second|minute|hour|day|week|month|year|person|night|kilometre)s?\b"
    r"| per [a-z-]+\b)*"
)
DIMENSION = r"long|wide|deep|high|tall|thick|old|heavy"
IDENT_NOUNS = (
    r"extension|phone number|number|code|part|room|floor|edition|version|firmware|model|level|"
    r"serial number|ticket|channel|desk|gate|bay"
)
IDENT = r"(?:[A-Z]{1,5}[-]?\d[\w.-]*|\d[\w.-]*|[A-Z]\d+)"

MODALS = {"must", "may", "can", "cannot", "should", "will", "would", "could", "might", "shall"}
_BE = {"is", "are", "was", "were"}
_HAVE = {"has", "have", "had"}
PRONOUNS = {
    "it", "they", "this", "these", "that", "those", "he", "she", "we", "you", "there", "i", "its", "their",
    "here", "such", "both", "which", "who", "what", "each", "one", "some", "others", "another", "all",
}  # fmt: skip
QUANTIFIERS = {"one", "each", "all", "some", "both"}
_LEADING_ADVERBS = {"today", "currently", "now", "normally", "usually", "typically", "also"}
DETERMINERS = {
    "the", "a", "an", "each", "every", "all", "our", "your", "its", "their", "this", "these", "no", "any",
    "most", "some", "many", "several", "both", "new", "full-time", "part-time", "other",
}  # fmt: skip
# Words that cannot open a subject: the sentence opens with a clause or a phrase whose meaning the
# question would lose ("If the sonde is stored...", "With Bluetooth off, ...").
_OPENERS = {
    "if", "when", "while", "although", "though", "because", "as", "since", "unless", "to", "for", "with",
    "without", "during", "between", "after", "before", "on", "in", "at", "from", "outside", "within",
    "once", "by", "under", "over", "until", "where", "how", "why", "what", "who", "whether", "so", "and",
    "but", "or", "then", "not", "never", "do", "does", "please", "note", "see", "only", "even", "just",
    "instead", "otherwise", "however", "here", "yes", "no", "thanks", "thank", "let",
}  # fmt: skip
ENDS_BADLY = re.compile(
    r"\b(?:and|or|but|then|than|to|of|in|on|at|by|for|with|from|the|a|an|as|so|that|which|who|when|where)$",
    re.IGNORECASE,
)
PERSONAL = re.compile(
    r"\b(?:manager|team|director|officer|panel|person|people|staff|lead|steward|supervisor|founder|"
    r"engineer|technician|employee|member|owner|coordinator|committee|board|desk|department|chair|master|keeper|"
    r"head|president|ceo|contact|founder|steward|nurse|doctor|teacher|instructor|trainer|host)s?\b",
    re.IGNORECASE,
)

_VERB_TEXT = """
    accept add allow apply approve arrange assemble attend book border bring build buy carry charge check claim
    clean close collect come compensate complete connect contain cost cover deliver design divide donate draw earn
    employ end expire export extend face fail fit follow found get give go handle happen hang hold host include
    issue keep last lead lend limit log make manage measure meet mount need offer open operate own pay place plan
    produce provide reach receive record reimburse repair replace report require reserve return review run
    schedule sell send serve set ship sit stand start stay store submit supply support switch take teach test
    train use weigh work write sample show answer
"""
_VERB_LEMMAS = set(_VERB_TEXT.split())
_IRREGULAR = {
    "begin": ("began", "begun"), "bring": ("brought", "brought"), "build": ("built", "built"),
    "buy": ("bought", "bought"), "come": ("came", "come"), "draw": ("drew", "drawn"), "get": ("got", "got"),
    "give": ("gave", "given"), "go": ("went", "gone"), "hang": ("hung", "hung"), "hold": ("held", "held"),
    "keep": ("kept", "kept"), "lead": ("led", "led"), "lend": ("lent", "lent"), "make": ("made", "made"),
    "meet": ("met", "met"), "pay": ("paid", "paid"), "run": ("ran", "run"), "sell": ("sold", "sold"),
    "send": ("sent", "sent"), "set": ("set", "set"), "sit": ("sat", "sat"), "stand": ("stood", "stood"),
    "take": ("took", "taken"), "teach": ("taught", "taught"), "write": ("wrote", "written"),
    "show": ("showed", "shown"),
}  # fmt: skip
_DOUBLED = {"ship", "plan", "fit", "log", "submit", "stop", "refer", "admit", "permit"}


def _third_person(lemma: str) -> str:
    if lemma == "go":
        return "goes"
    if re.search(r"(?:s|sh|ch|x|z)$", lemma):
        return lemma + "es"
    if re.search(r"[^aeiou]y$", lemma):
        return lemma[:-1] + "ies"
    return lemma + "s"


def _regular_past(lemma: str) -> str:
    if lemma.endswith("e"):
        return lemma + "d"
    if re.search(r"[^aeiou]y$", lemma):
        return lemma[:-1] + "ied"
    if lemma in _DOUBLED:
        return lemma + lemma[-1] + "ed"
    return lemma + "ed"


# form -> (lemma, tense): "3sg", "base", "past"; participles separately (they follow an auxiliary).
_FINITE: dict[str, tuple[str, str]] = {}
_PARTICIPLES: set[str] = set()
for _lemma in _VERB_LEMMAS:
    _past, _participle = _IRREGULAR.get(_lemma, (_regular_past(_lemma), _regular_past(_lemma)))
    _FINITE[_lemma] = (_lemma, "base")
    _FINITE[_third_person(_lemma)] = (_lemma, "3sg")
    _FINITE.setdefault(_past, (_lemma, "past"))
    _PARTICIPLES.add(_participle)
_FINITE.update({"has": ("have", "3sg"), "have": ("have", "base"), "had": ("have", "past")})
THIRD = "|".join(sorted((f for f, (_, tense) in _FINITE.items() if tense == "3sg"), key=len, reverse=True))


@dataclass(frozen=True)
class Clause:
    """A sentence taken apart: "the HX4 pump" | "must" "be recalibrated" | "every six months"."""

    subject: str  # "" for an imperative
    aux: str  # what moves before the subject in a question: "must", "is", "does", "should"
    verb: str  # what stays after it: "be recalibrated", "employ", "" for a copula
    rest: str
    passive: bool = False
    copula: bool = False
    lemma: str = ""


@dataclass(frozen=True)
class Span:
    """A part of a clause's rest that answers a question word."""

    start: int
    end: int
    wh: str  # "How often", "How many people", "Who"
    answer: str
    strand: str = ""  # a preposition left at the end of the question: "What extension is it on?"


def sentences(text: str) -> list[str]:
    """The sentences of a chunk: headings, table rows and page furniture dropped, wrapped lines joined."""
    blocks: list[list[str]] = [[]]
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        bullet = re.match(r"^(?:[-*•]|\d+[.)])\s+", line)
        if not line or line.startswith(("#", "|", "===")) or re.fullmatch(r"(?:Page|p\.)\s*\d+", line):
            blocks.append([])
            continue
        # A short line without final punctuation, followed by a capitalised line, is a heading.
        if (
            not bullet
            and not re.search(r"[.!?:;,]$", line)
            and len(line.split()) <= 10
            and nxt[:1].isupper()
            and not re.search(r"\b(?:a|an|the|of|and|or|to|in|on|at|by|for|with)$", line, re.IGNORECASE)
        ):
            blocks.append([])
            continue
        if bullet:
            blocks.append([line[bullet.end() :]])
            continue
        blocks[-1].append(line)
    out: list[str] = []
    for block in blocks:
        # Chinese writes no spaces: lines wrapped inside a word ("文\n件") and PDF gaps join without one (文件).
        flat = re.sub(f"(?<=[{HAN}]) (?=[{HAN}])", "", " ".join(" ".join(block).split()))
        flat = re.sub(r"\*\*([^*]+)\*\*", r"\1", flat).replace("`", "")
        out += text_sentences(flat)  # core.text's one splitter, on the block's lines joined
    return out


def _strip_parentheses(sentence: str) -> str:
    return " ".join(re.sub(r"\s*\([^()]*\)", "", sentence).split())


def parse_clause(sentence: str) -> Clause | None:
    """The subject, the verb group and the rest of a simple declarative or imperative sentence, else None."""
    body = _strip_parentheses(sentence).rstrip(".!").strip()
    if not body or "?" in body or not body[0].isupper():
        return None
    words = body.split()
    if words[0].lower().rstrip(",") in _LEADING_ADVERBS:
        words = words[1:]
    if len(words) < 3:
        return None
    first = words[0].lower()
    lemma_tense = _FINITE.get(first)
    second = words[1].lower()
    if (
        lemma_tense
        and lemma_tense[1] == "base"
        and first not in _HAVE
        and second not in _BE | MODALS | {"has", "have", "does", "do"}
        and second not in _FINITE
    ):
        return Clause("", "should", "you " + first, " ".join(words[1:]), lemma=first)
    if first in _OPENERS or (first in PRONOUNS and first not in QUANTIFIERS):
        return None
    for i, word in enumerate(words[1:13], start=1):
        w = word.lower()
        if re.search(r"[,;:]$", words[i - 1]):
            return None  # the subject holds a comma: an apposition or an opening clause
        subject = " ".join(words[:i])
        after = words[i + 1 :]
        nxt = after[0].lower() if after else ""
        if w in MODALS:
            if nxt == "not" or w == "cannot":
                return None
            if nxt == "be" and len(after) > 1 and _is_participle(after[1]):
                return Clause(subject, w, f"be {after[1]}", " ".join(after[2:]), passive=True)
            if nxt == "be":
                return Clause(subject, w, "be", " ".join(after[1:]), copula=True)
            if nxt in _FINITE or nxt.isalpha():
                return Clause(subject, w, nxt, " ".join(after[1:]), lemma=nxt)
            return None
        if w in _BE:
            if nxt in {"not", "never"}:
                return None
            if after and _is_participle(after[0]):
                return Clause(subject, w, after[0], " ".join(after[1:]), passive=True)
            return Clause(subject, w, "", " ".join(after), copula=True)
        found = _FINITE.get(w)
        if found and _after_a_noun(words[i - 1]) and nxt != "of":  # "the design of X comes": a noun
            lemma, tense = found
            if tense == "past":
                return None  # "did <lemma>" reads wrong too often without a real lemmatiser
            aux = "does" if tense == "3sg" else "do"
            if w in _HAVE and after and _is_participle(after[0]):
                return None  # a perfect tense ("has met")
            return Clause(subject, aux, lemma, " ".join(after), lemma=lemma)
    return None


def _is_participle(word: str) -> bool:
    w = word.lower()
    return w in _PARTICIPLES or (len(w) > 4 and w.endswith("ed"))


def _after_a_noun(word: str) -> bool:
    """Whether a verb form can follow this word: "the use" is a noun, "Brackenridge uses" a verb."""
    w = word.lower().strip(",")
    return w not in DETERMINERS and w not in {"of", "to", "for", "in", "on", "at", "by", "with", "and", "or"}
