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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from core.finetune.datasets import Pair
from core.models import ModelCatalog
from core.progress import CancelFlag, Progress
from core.samples import load_questions
from core.store import SearchHit, Store
from core.text import is_cjk

log = logging.getLogger(__name__)

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_WORD_NUMBERS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|a dozen|"
    "a hundred|a thousand"
)
_NUM = rf"(?:(?:\d+(?:[.,:]\d+)*|(?:{_WORD_NUMBERS})(?:[- ](?:{_WORD_NUMBERS}))?)(?: (?:million|billion|thousand))?)"
_QMOD = (
    r"(?:up to|about|around|approximately|roughly|at least|at most|more than|less than|over|under|"
    r"nearly|almost|only|exactly|a maximum of|a minimum of|a total of|some)"
)
_TIME_UNIT = r"(?:second|minute|hour|day|working day|calendar day|week|month|year)s?"
_MONEY_UNIT = r"(?:euros?|dollars?|pounds?|EUR|USD|GBP|cents?|yuan|yen)"
_MEASURE_UNIT = (
    r"(?:(?:square |cubic )?(?:milli|centi|kilo)?met(?:re|er)s?|(?:kilo)?grams?|kg|km|cm|mm|litres?|liters?|"
    r"percent|per cent|%|watts?|volts?|degrees(?: Celsius)?|bar|metres per second)"
)
_PER = (
    r"(?: (?:per|a|an|each) (?:[a-z-]+ )?(?:second|minute|hour|day|week|month|year|person|night|kilometre)s?\b"
    r"| per [a-z-]+\b)*"
)
_DIMENSION = r"long|wide|deep|high|tall|thick|old|heavy"
_IDENT_NOUNS = (
    r"extension|phone number|number|code|part|room|floor|edition|version|firmware|model|level|"
    r"serial number|ticket|channel|desk|gate|bay"
)
_IDENT = r"(?:[A-Z]{1,5}[-]?\d[\w.-]*|\d[\w.-]*|[A-Z]\d+)"

MODALS = {"must", "may", "can", "cannot", "should", "will", "would", "could", "might", "shall"}
_BE = {"is", "are", "was", "were"}
_HAVE = {"has", "have", "had"}
PRONOUNS = {
    "it", "they", "this", "these", "that", "those", "he", "she", "we", "you", "there", "i", "its", "their",
    "here", "such", "both", "which", "who", "what", "each", "one", "some", "others", "another", "all",
}  # fmt: skip
_QUANTIFIERS = {"one", "each", "all", "some", "both"}
_LEADING_ADVERBS = {"today", "currently", "now", "normally", "usually", "typically", "also"}
_DETERMINERS = {
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
_ENDS_BADLY = re.compile(
    r"\b(?:and|or|but|then|than|to|of|in|on|at|by|for|with|from|the|a|an|as|so|that|which|who|when|where)$",
    re.IGNORECASE,
)
_PERSONAL = re.compile(
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
_THIRD = "|".join(sorted((f for f, (_, tense) in _FINITE.items() if tense == "3sg"), key=len, reverse=True))


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
        flat = " ".join(" ".join(block).split())
        flat = re.sub(r"\*\*([^*]+)\*\*", r"\1", flat).replace("`", "")
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", flat) if s.strip()]
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
    if first in _OPENERS or (first in PRONOUNS and first not in _QUANTIFIERS):
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
    return w not in _DETERMINERS and w not in {"of", "to", "for", "in", "on", "at", "by", "with", "and", "or"}


def _spans(rest: str, clause: Clause, topic: frozenset[str] = frozenset()) -> list[Span]:
    """Every recognised answer span in the clause's rest, in order of position.

    Args:
        topic: names the whole document is about ("Debian" in a Debian manual): "Where? On Debian" answers nothing.
    """
    spans: list[Span] = []
    generic = clause.subject.split()[:1] in (["A"], ["An"])  # "A filename is referred by…": a convention, no fact

    def add(match: re.Match[str], wh: str, answer: str, group: int | str = 0, strand: str = "") -> None:
        spans.append(Span(match.start(group), match.end(group), wh, answer.strip(" ,"), strand))

    for m in re.finditer(
        rf"(?<!for )\b(?:(?:once|twice|three times|four times) (?:a|an|per|every|each) (?:day|week|month|year|quarter)"
        rf"|every (?:other |second |third )?(?:{_NUM} )?(?:{_TIME_UNIT}|quarter|morning|evening|night)"
        rf"(?: of use)?|(?:daily|weekly|monthly|yearly|annually|hourly|quarterly)(?= (?:by|at|in|on|from)\b|$))\b",
        rest,
    ):
        add(m, "How often", m.group(0))
    day = rf"(?:{_DAYS})s?"
    date = (
        rf"(?:\d{{1,2}} (?:{_MONTHS})(?: \d{{4}})?|(?:{_MONTHS})(?: \d{{1,2}})?(?:,? \d{{4}})?"
        rf"|(?:19|20)\d{{2}}\b(?!\s*(?:{_MONEY_UNIT}|%|percent))"
        rf"|\d{{1,2}}:\d{{2}}(?: ?[ap]m)?|\d{{1,2}} ?[ap]m|the \d+(?:st|nd|rd|th)(?: of (?:the|each|every) month)?"
        rf"|noon|midnight|{day}|the end of (?:the|each|every) (?:day|week|month|year)"
        rf"|the (?:first|second|third|fourth|last) (?:{_DAYS}|day|working day|week)(?: of (?:each|every|the) month)?)"
    )
    every_day = rf"every (?:other )?(?:{_DAYS}|{_MONTHS}|day|weekday|working day)"
    for m in re.finditer(
        rf"\b(?:(?:{every_day})(?: and {day})*(?: morning| afternoon| evening)?(?: (?:at|from) {date}(?: to {date})?)?"
        rf"|from {date} to {date}(?:(?: local time)?,? {day} to {day}| on (?:{day}|weekdays|weekends|working days))?"
        rf"|(?P<prep>in|on|at|by|before|after|since|until|from) {date}(?: (?:at|from) {date}(?: to {date})?)?)\b",
        rest,
    ):
        prep = m.group("prep")
        wh = {"by": "By when", "before": "By when", "since": "Since when", "until": "Until when"}.get(
            prep or "", "When"
        )
        if prep in {"after", "from"}:
            continue
        add(m, wh, m.group(0))
    for m in re.finditer(
        rf"\b(?P<prep>for|within|in under|after) (?:{_QMOD} )?(?:{_NUM}|an?) (?:consecutive )?{_TIME_UNIT}"
        rf"(?: of (?:the |its |your |their )?[\w-]+)?",
        rest,
    ):
        prep = m.group("prep")
        wh = {"for": "How long", "within": "How soon", "in under": "How soon", "after": "After how long"}[prep]
        add(m, wh, m.group(0))
    for m in re.finditer(
        rf"(?:^|\b(?:to|of|at|be|is|are|with|by) )(?P<q>(?:{_QMOD} )?{_NUM}(?: |-)(?:{_MEASURE_UNIT}|{_TIME_UNIT}))"
        rf" (?P<dim>{_DIMENSION})\b",
        rest,
    ):
        add(m, f"How {m.group('dim')}", f"{m.group('q')}", 0)
    for m in re.finditer(
        rf"(?:^|\b(?P<prep>on|at|to|is|as|of) )(?:(?:internal|the|an?|its|their|your) )*(?P<noun>{_IDENT_NOUNS}) "
        rf"(?P<id>{_IDENT}(?: \d+)*)(?=$|[ ,;.])",
        rest,
    ):
        prep = m.group("prep") or ""
        strand = prep if prep in {"on", "at", "to"} else ""
        add(m, f"What {m.group('noun')}", m.group("id"), strand=strand)
    _quantities(rest, clause, add)
    for m in re.finditer(
        rf"(?:^|(?<!up )\b(?P<prep>to|at|with) )(?:a|an) (?P<noun>(?:[\w-]+ ){{0,2}}?[a-z][\w-]*) of "
        rf"(?P<q>(?:{_QMOD} )?{_NUM} (?:{_MONEY_UNIT}|{_MEASURE_UNIT}|{_TIME_UNIT}|[a-z]+){_PER}"
        r"(?: for (?:every|each) [a-z]+(?: worked)?)?)(?=$| )",
        rest,
    ):
        prep = m.group("prep") or ""
        add(m, f"What {m.group('noun')}", m.group("q"), strand=prep)
    if clause.passive and clause.verb.split()[-1] in {"made", "built", "composed", "constructed"}:
        material = re.match(r"(?P<prep>of|from) (?P<np>[\w -]+)$", rest)
        if material:
            add(material, "What", material.group("np"), strand=material.group("prep"))
    if clause.copula and not clause.verb:
        head = re.split(r" (?:of|with|at|in|on|for|from|to)\b", clause.subject)[0]
        # A noun phrase naming something ("the car park of Pellham Yard", "St Aldric's"), not an adjective.
        named = re.fullmatch(r"(?:(?:the|a|an) (?:[\w'-]+ ){0,5}?|(?=[A-Z]))[A-Z][\w'-]*(?: [A-Z0-9][\w'-]*)*", rest)
        if named and not spans and clause.aux not in {"was", "were"}:  # "What were pipes?" asks for no fact
            last = clause.subject.split()[-1].lower()
            if last in rest.lower().split() and rest[:1].isupper():  # "Fridays are Quiet Fridays": a name given
                add(named, "What", named.group(0), strand="called")
            else:
                add(named, "Who" if _PERSONAL.search(head) else "What", named.group(0))
    if clause.passive and not generic:
        for m in re.finditer(
            rf"\bby (?!{_NUM}\b|(?:{_MONTHS}|{_DAYS})\b|default\b|hand\b|phone\b|email\b|post\b)"
            r"(?P<np>(?:(?:the|a|an|your|our|their|its) )?[\w'-]+(?: (?:[\w'-]+))*?)"
            r"(?=$|,|;| (?:that|who|which|within|before|after|at|in|on|for|from|with|when|if|and then|once|unless|"
            r"because|although|while)\b)",
            rest,
        ):
            np = m.group("np")
            named = re.match(r"[A-Z]", np) and re.search(r"(?:^| )[A-Z][\w'-]*$", np)  # "XML tools" is no one
            wh = "Who" if named or _PERSONAL.search(np) else "What"
            add(m, wh, np, strand="by")
    for m in re.finditer(
        rf"\b(?P<prep>in|at|on|from) (?P<np>(?:the )?(?!(?:{_MONTHS}|{_DAYS})\b)(?:[A-Z][\w-]*(?: |$))+"
        r"(?:\d+ |(?:room|house|office|portal|app|building|floor|site|centre|center|hall|studio|basin|shed|tool|"
        r"system|line|channel|page|website|intranet|quay|harbour|street|road)s? )?"
        r"(?:(?:at|of|in) (?:the )?(?:[A-Z][\w-]*(?: |$))+)*)",
        rest + " ",
    ):
        np = m.group("np").strip()
        if not np or np.lower().startswith("the") and len(np.split()) < 2:
            continue
        if re.fullmatch(r"[A-Z]{1,3}", np.split()[-1]):
            continue  # "in CSV", "on iOS": a format or a system, not a place
        end = m.start() + len(m.group(0).rstrip())
        activity = clause.subject.split()[:1] and clause.subject.split()[0].endswith("ing")
        if generic or activity or not _np_ends(rest[end:]):
            continue  # an activity ("Moving the cursor"), or a name cut short: "in MSDOS [style]", "in Section [2.1]"
        if _only_topic(np, topic):
            continue  # "on Debian", "on the Debian system" in a Debian manual
        spans.append(Span(m.start(), min(end, len(rest)), "Where", f"{m.group('prep')} {np}"))
    return sorted(spans, key=lambda s: (s.start, -s.end))


# Words that can follow a whole noun phrase; any other ("style", "2.1.4", "and") means the name went on.
_NP_FOLLOWERS = {
    "for", "to", "with", "by", "since", "until", "when", "if", "before", "after", "because", "but", "so", "where",
    "which", "that", "who", "whose", "is", "are", "was", "were", "now", "today", "only", "too", "also", "instead",
    "in", "on", "at", "from", "into", "via", "within", "during", "through", "without", "under",
}  # fmt: skip
_PLACE_NOUNS = {"the", "a", "an", "system", "systems", "machine", "machines", "host", "computer", "platform"}


def _np_ends(after: str) -> bool:
    """Whether a noun phrase ends here: at the end, before punctuation, or before a word that cannot continue it."""
    after = after.strip()
    return not after or after[0] in ",;:.!?()" or after.split()[0].lower() in _NP_FOLLOWERS


def _only_topic(np: str, topic: frozenset[str]) -> bool:
    words = [w for w in np.split() if w.lower() not in _PLACE_NOUNS]
    return bool(words) and all(w in topic for w in words)


def _quantities(rest: str, clause: Clause, add: Callable[..., None]) -> None:
    """A count, an amount of money or a measure, as the object or complement ("employs 214 people")."""
    lead = r"^(?:(?:remotely|only|also|automatically|normally) )?"
    m = re.match(rf"{lead}(?P<all>(?P<q>(?:{_QMOD} )?(?P<num>{_NUM})) (?P<unit>{_MONEY_UNIT}){_PER})", rest)
    if m:
        add(m, "How much", m.group("all"), "all")
        return
    m = re.match(
        rf"{lead}(?P<all>(?P<q>(?:{_QMOD} )?(?P<num>{_NUM})) (?P<unit>{_MEASURE_UNIT}){_PER}(?: of [\w-]+)?)", rest
    )
    if m:
        add(m, "How much", m.group("all"), "all")
        return
    m = re.match(rf"{lead}(?P<all>(?P<q>(?:{_QMOD} )?(?P<num>{_NUM})) (?P<unit>{_TIME_UNIT})\b{_PER})(?! of)", rest)
    if m and (clause.copula or clause.lemma in {"last", "take", "run", "stay", "need", "require"}):
        add(m, "How long", m.group("all"), "all")
        return
    m = re.match(
        rf"{lead}(?P<all>(?P<q>(?:{_QMOD} )?(?P<num>{_NUM})) (?P<np>(?:[a-z][\w-]* ){{0,3}}?"
        r"(?:[a-z][\w-]*s|people|staff|children|men|women|data|leave|pay)\b)"
        rf"(?P<per>{_PER})(?P<of> of (?!the\b)[a-z][\w'-]*(?: [a-z][\w'-]*){{0,2}}(?= |$|,))?(?P<per2>{_PER})"
        r"(?P<adv> (?:ahead|in advance|earlier|later|long|old))?)",
        rest,
    )
    if m and m.group("num").lower() not in {"one", "1", "a"}:
        np = m.group("np") + m.group("per") + (m.group("of") or "") + m.group("per2") + (m.group("adv") or "")
        if not re.search(r"\b(?:and|or|to|from|with|at|in|on|for|by|that|which)\b", np):
            add(m, f"How many {np}", m.group("q"), "all")


def _subject_in_question(subject: str, proper: set[str]) -> str:
    """The subject as it reads mid-sentence: "The HX4 pump" -> "the HX4 pump", "Brackenridge" kept."""
    first, _, tail = subject.partition(" ")
    keep = (
        first.lower() not in _DETERMINERS
        and not (first.endswith("ing") and not tail[:1].isupper())
        and (
            first in proper
            or re.fullmatch(rf"(?:{_DAYS}|{_MONTHS})s?", first) is not None
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
        _ENDS_BADLY.search(remainder)
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
        rf"(?:,? and|;) (?=(?:is|are|was|were|must|may|can|should|will|has|have|{_THIRD})\b)", clause.rest
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
        spans = _spans(c.rest, c, frozenset(topic))
        for span in _distinct(spans):
            if listed and span.end >= len(c.rest) and span.wh.split()[-1] not in _DIMENSION.split("|"):
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
    if re.fullmatch(r"[A-Z][a-z]+(?: [A-Z][a-z]+){1,2}", value) and _PERSONAL.search(label):
        return f"Who is {the}{label}?", value
    return None


def _good_subject(subject: str) -> bool:
    words = subject.split()
    return (
        1 <= len(words) <= 8
        and (words[0].lower() not in PRONOUNS or (len(words) > 1 and words[0].lower() in _QUANTIFIERS))
        and not re.search(
            r"[\"“”‘,;:]|^'|'$|\b(?:which|who|that|whose|you|we|they|it|i|he|she|if|when|while|because|unless|although|"
            r"whether)\b",
            subject[:1].lower() + subject[1:],
        )
        and not (len(words) == 2 and words[0].lower() == "the" and words[1].lower() in _GENERIC)
        and not (len(words) == 1 and words[0].lower() in _DETERMINERS)
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
    """Questions with a short answer and its sentence as evidence, in reading order, each sentence once."""
    hits = list(hits)
    proper = proper_words(s for h in hits for s in sentences(h.text))
    topic = topic_words([s for h in hits for s in sentences(h.text)])
    seen: set[str] = set()
    questions: set[str] = set()
    out: list[Pair] = []
    for hit in hits:
        for sentence in sentences(hit.text):
            if sentence in seen:
                continue
            seen.add(sentence)
            for question, answer in questions_for(sentence, proper=proper, topic=topic):
                if question.casefold() in questions:
                    continue
                questions.add(question.casefold())
                out.append(Pair(question, answer, evidence=sentence))
                if len(out) >= limit:
                    return out
    return out


GLUED_WORDS_PER_SENTENCE = 60  # above this, sentence ends are missing: text glued by PDF extraction
OTHER_WAYS = (
    "upload question/answer pairs (CSV or JSONL) instead, or have an Ollama model write the questions (offered "
    "here when Ollama is reachable)"
)


NOT_FOR_CHINESE = (
    "Drawing questions from Chinese or Japanese text is not supported yet: the rules read English sentences. "
    "To fine-tune on it, have an Ollama model write the questions (offered here when Ollama is reachable), or write "
    "question/answer pairs yourself in a CSV or JSONL file and load it under Upload JSONL/CSV."
)


def no_pairs_reason(hits: Sequence[SearchHit]) -> str:
    """Why `pairs_from_hits` drew no question from these chunks, and what to do instead."""
    if not hits:
        return "This knowledge base has no documents yet: add some on the Documents page."
    text = " ".join(h.text for h in hits)
    if is_cjk(text):
        return NOT_FOR_CHINESE
    found = [s for h in hits for s in sentences(h.text)]
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
