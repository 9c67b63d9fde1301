"""The parts of a clause's rest that answer a question word ("every six months" answers "How often").

A frequency, a time, a duration, a dimension, an identifier, a quantity, a rate, a material, a name,
the agent of a passive, a place; `core.finetune.generate` turns each into a question.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from core.finetune.clauses import (
    DAYS,
    DIMENSION,
    IDENT,
    IDENT_NOUNS,
    MEASURE_UNIT,
    MONEY_UNIT,
    MONTHS,
    NUM,
    PER,
    PERSONAL,
    QMOD,
    TIME_UNIT,
    Clause,
    Span,
)

Add = Callable[..., None]  # records a span: (match, question word, answer, group, strand)


def find_spans(rest: str, clause: Clause, topic: frozenset[str] = frozenset()) -> list[Span]:
    """Every recognised answer span in the clause's rest, in order of position.

    Args:
        topic: names the whole document is about ("Debian" in a Debian manual): "Where? On Debian" answers nothing.
    """
    spans: list[Span] = []
    generic = clause.subject.split()[:1] in (["A"], ["An"])  # "A filename is referred by…": a convention, no fact

    def add(match: re.Match[str], wh: str, answer: str, group: int | str = 0, strand: str = "") -> None:
        spans.append(Span(match.start(group), match.end(group), wh, answer.strip(" ,"), strand))

    for rule in (_frequencies, _times, _durations, _dimensions, _identifiers):
        rule(rest, add)
    _quantities(rest, clause, add)
    _rates(rest, add)
    _material(rest, clause, add)
    _name(rest, clause, add, spans_before=bool(spans))
    if clause.passive and not generic:
        _agents(rest, add)
    spans += _places(rest, clause, topic, generic)
    return sorted(spans, key=lambda s: (s.start, -s.end))


def _frequencies(rest: str, add: Add) -> None:
    """A frequency: "every six months", "twice a year", "daily"."""
    for m in re.finditer(
        rf"(?<!for )\b(?:(?:once|twice|three times|four times) (?:a|an|per|every|each) (?:day|week|month|year|quarter)"
        rf"|every (?:other |second |third )?(?:{NUM} )?(?:{TIME_UNIT}|quarter|morning|evening|night)"
        rf"(?: of use)?|(?:daily|weekly|monthly|yearly|annually|hourly|quarterly)(?= (?:by|at|in|on|from)\b|$))\b",
        rest,
    ):
        add(m, "How often", m.group(0))


def _times(rest: str, add: Add) -> None:
    """A time or date: "at 10:00", "by 31 March", "every Monday morning"."""
    day = rf"(?:{DAYS})s?"
    date = (
        rf"(?:\d{{1,2}} (?:{MONTHS})(?: \d{{4}})?|(?:{MONTHS})(?: \d{{1,2}})?(?:,? \d{{4}})?"
        rf"|(?:19|20)\d{{2}}\b(?!\s*(?:{MONEY_UNIT}|%|percent))"
        rf"|\d{{1,2}}:\d{{2}}(?: ?[ap]m)?|\d{{1,2}} ?[ap]m|the \d+(?:st|nd|rd|th)(?: of (?:the|each|every) month)?"
        rf"|noon|midnight|{day}|the end of (?:the|each|every) (?:day|week|month|year)"
        rf"|the (?:first|second|third|fourth|last) (?:{DAYS}|day|working day|week)(?: of (?:each|every|the) month)?)"
    )
    every_day = rf"every (?:other )?(?:{DAYS}|{MONTHS}|day|weekday|working day)"
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


def _durations(rest: str, add: Add) -> None:
    """A duration after its preposition: "for two weeks", "within 30 days"."""
    for m in re.finditer(
        rf"\b(?P<prep>for|within|in under|after) (?:{QMOD} )?(?:{NUM}|an?) (?:consecutive )?{TIME_UNIT}"
        rf"(?: of (?:the |its |your |their )?[\w-]+)?",
        rest,
    ):
        prep = m.group("prep")
        wh = {"for": "How long", "within": "How soon", "in under": "How soon", "after": "After how long"}[prep]
        add(m, wh, m.group(0))


def _dimensions(rest: str, add: Add) -> None:
    """A measure and what it measures: "is 40 metres long"."""
    for m in re.finditer(
        rf"(?:^|\b(?:to|of|at|be|is|are|with|by) )(?P<q>(?:{QMOD} )?{NUM}(?: |-)(?:{MEASURE_UNIT}|{TIME_UNIT}))"
        rf" (?P<dim>{DIMENSION})\b",
        rest,
    ):
        add(m, f"How {m.group('dim')}", f"{m.group('q')}", 0)


def _identifiers(rest: str, add: Add) -> None:
    """A numbered thing: "on extension 214", "model HX4"."""
    for m in re.finditer(
        rf"(?:^|\b(?P<prep>on|at|to|is|as|of) )(?:(?:internal|the|an?|its|their|your) )*(?P<noun>{IDENT_NOUNS}) "
        rf"(?P<id>{IDENT}(?: \d+)*)(?=$|[ ,;.])",
        rest,
    ):
        prep = m.group("prep") or ""
        strand = prep if prep in {"on", "at", "to"} else ""
        add(m, f"What {m.group('noun')}", m.group("id"), strand=strand)


def _rates(rest: str, add: Add) -> None:
    """A named amount: "at a daily cap of 45 euros"."""
    for m in re.finditer(
        rf"(?:^|(?<!up )\b(?P<prep>to|at|with) )(?:a|an) (?P<noun>(?:[\w-]+ ){{0,2}}?[a-z][\w-]*) of "
        rf"(?P<q>(?:{QMOD} )?{NUM} (?:{MONEY_UNIT}|{MEASURE_UNIT}|{TIME_UNIT}|[a-z]+){PER}"
        r"(?: for (?:every|each) [a-z]+(?: worked)?)?)(?=$| )",
        rest,
    ):
        prep = m.group("prep") or ""
        add(m, f"What {m.group('noun')}", m.group("q"), strand=prep)


def _material(rest: str, clause: Clause, add: Add) -> None:
    """What a thing is made of: "is built from oak"."""
    if clause.passive and clause.verb.split()[-1] in {"made", "built", "composed", "constructed"}:
        material = re.match(r"(?P<prep>of|from) (?P<np>[\w -]+)$", rest)
        if material:
            add(material, "What", material.group("np"), strand=material.group("prep"))


def _name(rest: str, clause: Clause, add: Add, *, spans_before: bool) -> None:
    """What or who a copula names, when nothing else in the rest answers: "The manager is Ada Brill"."""
    if clause.copula and not clause.verb:
        head = re.split(r" (?:of|with|at|in|on|for|from|to)\b", clause.subject)[0]
        # A noun phrase naming something ("the car park of Pellham Yard", "St Aldric's"), not an adjective.
        named = re.fullmatch(r"(?:(?:the|a|an) (?:[\w'-]+ ){0,5}?|(?=[A-Z]))[A-Z][\w'-]*(?: [A-Z0-9][\w'-]*)*", rest)
        if named and not spans_before and clause.aux not in {"was", "were"}:  # "What were pipes?" asks for no fact
            last = clause.subject.split()[-1].lower()
            if last in rest.lower().split() and rest[:1].isupper():  # "Fridays are Quiet Fridays": a name given
                add(named, "What", named.group(0), strand="called")
            else:
                add(named, "Who" if PERSONAL.search(head) else "What", named.group(0))


def _agents(rest: str, add: Add) -> None:
    """The agent of a passive: "is approved by the finance team"."""
    for m in re.finditer(
        rf"\bby (?!{NUM}\b|(?:{MONTHS}|{DAYS})\b|default\b|hand\b|phone\b|email\b|post\b)"
        r"(?P<np>(?:(?:the|a|an|your|our|their|its) )?[\w'-]+(?: (?:[\w'-]+))*?)"
        r"(?=$|,|;| (?:that|who|which|within|before|after|at|in|on|for|from|with|when|if|and then|once|unless|"
        r"because|although|while)\b)",
        rest,
    ):
        np = m.group("np")
        named = re.match(r"[A-Z]", np) and re.search(r"(?:^| )[A-Z][\w'-]*$", np)  # "XML tools" is no one
        wh = "Who" if named or PERSONAL.search(np) else "What"
        add(m, wh, np, strand="by")


def _places(rest: str, clause: Clause, topic: frozenset[str], generic: bool) -> list[Span]:
    """Where: a capitalised place after in, at, on or from ("in the Harbour Room"), not the document's topic."""
    found: list[Span] = []
    for m in re.finditer(
        rf"\b(?P<prep>in|at|on|from) (?P<np>(?:the )?(?!(?:{MONTHS}|{DAYS})\b)(?:[A-Z][\w-]*(?: |$))+"
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
        found.append(Span(m.start(), min(end, len(rest)), "Where", f"{m.group('prep')} {np}"))
    return found


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
    m = re.match(rf"{lead}(?P<all>(?P<q>(?:{QMOD} )?(?P<num>{NUM})) (?P<unit>{MONEY_UNIT}){PER})", rest)
    if m:
        add(m, "How much", m.group("all"), "all")
        return
    m = re.match(
        rf"{lead}(?P<all>(?P<q>(?:{QMOD} )?(?P<num>{NUM})) (?P<unit>{MEASURE_UNIT}){PER}(?: of [\w-]+)?)", rest
    )
    if m:
        add(m, "How much", m.group("all"), "all")
        return
    m = re.match(rf"{lead}(?P<all>(?P<q>(?:{QMOD} )?(?P<num>{NUM})) (?P<unit>{TIME_UNIT})\b{PER})(?! of)", rest)
    if m and (clause.copula or clause.lemma in {"last", "take", "run", "stay", "need", "require"}):
        add(m, "How long", m.group("all"), "all")
        return
    m = re.match(
        rf"{lead}(?P<all>(?P<q>(?:{QMOD} )?(?P<num>{NUM})) (?P<np>(?:[a-z][\w-]* ){{0,3}}?"
        r"(?:[a-z][\w-]*s|people|staff|children|men|women|data|leave|pay)\b)"
        rf"(?P<per>{PER})(?P<of> of (?!the\b)[a-z][\w'-]*(?: [a-z][\w'-]*){{0,2}}(?= |$|,))?(?P<per2>{PER})"
        r"(?P<adv> (?:ahead|in advance|earlier|later|long|old))?)",
        rest,
    )
    if m and m.group("num").lower() not in {"one", "1", "a"}:
        np = m.group("np") + m.group("per") + (m.group("of") or "") + m.group("per2") + (m.group("adv") or "")
        if not re.search(r"\b(?:and|or|to|from|with|at|in|on|for|by|that|which)\b", np):
            add(m, f"How many {np}", m.group("q"), "all")
