"""Questions drawn from Chinese sentences by rules: the answer's span replaced by its question word, in place.

Chinese asks in place: "公司目前共有员工386人。" asks "公司目前共有员工多少人？" with the span that answers
("386人") put back by the word that asks for it, and no word moved. So a sentence gives a question wherever a
span of a known kind is found: a count with its measure word (多少人, 多少支), a frequency (每十二个月 -> 多久),
a year (哪一年), a place after 位于 (哪里), a command, file or package named in Latin script before the word for
its kind (什么命令, 什么文件), or a command's manual page opening the sentence (哪个命令用于…). The question keeps
the sentence up to the clause that holds the span: what comes after it answers nothing asked.

Sentences that need the text around them are skipped: those opening with a pronoun or a pointer (它, 这, 该,
下面, 如下, 参见…), shell lines, headings glued to a section number, lists cut short. "一" with a measure word
(一次, 一个) is an article more often than a count, so it is not asked. Kana or Hangul: not Chinese, no rule.
"""

from __future__ import annotations

import re

from core.text import HAN, HANGUL, KANA

_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
_DIGITS = "〇零一二三四五六七八九"
# Lazy, so a unit that opens with a numeral stays whole: 九点五千克 is 九点五 + 千克, not 九点五千 + 克.
NUMBER = rf"(?:\d+(?:\.\d+)?|[{_NUMERAL}]+?(?:点[{_NUMERAL}]+?)?)"
# "五至三十八摄氏度", "三到五天": a range answers as a whole.
RANGE = rf"{NUMBER}(?:\s?(?:至|到|~|-|－)\s?{NUMBER})?"
# Measure words and units, longest first so 个月 wins over 月 and 毫米 over 米.
_COUNTED = "小时 分钟 秒钟 秒 天 周 星期 个月 年 个 名 人 位 支 台 条 种 项 次 件 套 家 张 页 级 倍 篇 步 层 块 元"
_COUNTED += " 美元 字"
_MEASURED = "毫米 厘米 公里 千米 米 千克 公斤 克 毫升 升 摄氏度 兆帕 安培 伏 瓦 千瓦 赫兹 字节 KB MB GB TB 位元"
UNITS = sorted(f"{_COUNTED} {_MEASURED}".split(), key=len, reverse=True)
_UNIT = "|".join(UNITS)
_PERIOD = "小时|天|日|周|星期|个月|月|年|分钟"
# What a Latin-script name is, when the word after it says so: "使用 unzip 工具" asks "使用什么工具".
KINDS = "命令|软件包|包|文件|工具|程序|选项|变量|目录|模块|服务|库|格式|字段|参数|协议|键"
_QUOTE = "\"'“”‘’「」"
_TERM = rf"[{_QUOTE}]?(?P<term>[A-Za-z~/.$_-][A-Za-z0-9_~./:+$@-]*(?:\(\d\))?)[{_QUOTE}]?"
# "Debian 软件包管理系统", "shell 命令行": the name qualifies a longer noun, it is not the thing the kind names.
_COMPOUND = re.compile(r"行|系统|菜单|管理|名|列表|集|树|夹|类型|界面|窗口|格式|路径|文件")
_MAN_PAGE = re.compile(r"^(?P<term>[a-z][A-Za-z0-9_.+-]*\((?P<section>[18])\))\s*(?=用于|可以|能够|会|是|负责|提供)")

_SPANS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("多久", re.compile(rf"每(?:隔)?{NUMBER}(?:个)?(?:{_PERIOD})")),
    # A year, not a decade (90 年代), a span (三年内) or a date (2014年3月): 哪一年.
    ("哪一年", re.compile(rf"(?<![\d.])(?:\d{{4}}|[{_DIGITS}]{{4}})\s?年(?!\d|代|[以前后内]|[{_DIGITS}十]+月)")),
    ("百分之多少", re.compile(rf"百分之{NUMBER}(?![{_NUMERAL}点])|(?<![A-Za-z0-9_.]){NUMBER}\s?%")),
    # Not an ordinal (第三), a frequency (每三天), a demonstrative's count (这两个), one after a list ("A 和 B 两个"),
    # the tail of a longer numeral (第三十八条), a decade (90 年代) or a date's year (2014年3月).
    (
        "count",
        re.compile(
            rf"(?<![A-Za-z0-9_.)）第每满隔这那前{_NUMERAL}点-])(?P<n>{RANGE})\s?(?P<unit>{_UNIT})"
            rf"(?![A-Za-z]|代|\s?[\d{_DIGITS}十]+月)"
        ),
    ),
    ("哪里", re.compile(r"(?<=位于)[^，。；：,;:（(何哪\s]{2,15}(?=[，。；：,;:]|$)")),
    ("kind", re.compile(rf"(?<![A-Za-z0-9_.（(%:=-]){_TERM}\s?(?P<kind>{KINDS})")),
)
# A sentence that needs the text around it, or is not prose.
_NEEDS_CONTEXT = re.compile(
    r"^(?:它|他|她|这|那|其|该|此|本|上述|以上|下面|下列|以下|如下|同上|另外|此外|而且|但是?|因此|所以|然后|或者)"
)
# Pointers to the text around, pronouns mid-sentence, and what a PDF glued on: captions, admonition labels.
_POINTERS = re.compile(
    r"参见|见第|如下|下列|下面|以下|上述|上面|同上|例如|比如|[：:]$|它|这|那(?!么)|本文|本节|本章|本手册|"
    r"Table|Figure|EOF|^(?:注意|提示|警告|小心|注)\s|我"
    rf"|^[^A-Za-z0-9{HAN}“”\"'~/$]"  # a fragment: "+ 带有…", "） 为了…"
)
# Before a name, what makes it a modifier of the noun after it rather than the name asked for: "许多 gdb(1) 命令",
# "你的 shell 程序", "称为 busybox(1) 的 GNU 工具"; placeholders the manual's examples use.
_QUANTIFIED = re.compile(rf"(?:许多|很多|一些|部分|所有|任何|各种|其他|其它|你的|[{HAN}]的)\s?$")
# An admonition's label glued on by the PDF ("警告如果想要运行…"): dropped, the advice read as a sentence.
_LABEL = re.compile(rf"^(?:注意|提示|警告|小心)\s?(?=[{HAN}])")
# Words for a kind of thing, not a thing's name: "GUI 程序", "Unix 服务", "GNU 工具".
GENERIC = {"gui", "unix", "gnu", "linux", "debian", "shell", "posix", "windows", "cli", "web", "unix-like", "x11"}
_CAUSE = re.compile(r"由于|因为")
# A sentence whose start the PDF cut: "charset=ISO-2022-JP” 通常…", "Unicode，并且…".
_CUT_START = re.compile(rf"^[^{HAN}]*(?:=|[A-Za-z]”)|^[A-Za-z][A-Za-z0-9_-]*[，,]")
_PLACEHOLDER = re.compile(r"foo|bar\b|/path/to|example|\bX{2,}", re.IGNORECASE)
# Before its first Han character a sentence names at most one thing in Latin script ("T3 是…", "mount(8) 用于…"):
# more is a heading, a date or a command glued on by the PDF ("19 mai 2021 15:19:02 UTC 这里…").
_LATIN_LEAD = re.compile(rf"^[^{HAN}\s]+\s+[^{HAN}\s]+\s+[^{HAN}]*[{HAN}]")
_SHELL = re.compile(r"(?:^|\s)[$#]\s|\|\s|--\w|\s-\w\b")
_SECTION = re.compile(r"^\d+(?:\.\d+)+\s")
_BULLET = re.compile(r"^[–—\-•·*]\s*")
_CLAUSE_END = re.compile(r"[，,：:]")
# A clause that only sets a condition ("如果超过七天未使用", "连续病假超过三天的"): the question goes on to the next.
_CONDITION = re.compile(
    r"^(?:如果|若|假如|当|凡|一旦|如(?!何)|对于|即使|除非|为了|由于)"
    r"|(?:的|(?<!小)时|时候|后|前|内|以上|以下|之前|之后)$"
)
_MIN_CJK = 6
_MIN_ASKED = 4  # Han characters a question keeps besides its question word ("T3 共有多少支滤芯？")
# A clause that says what the one before is for: "编辑”/etc/passwd” 文件，使 root 账户条目的第二段为空".
_PURPOSE = re.compile(r"\s*(?:使|来(?!自)|以便|以(?![上下前后内外])|从而|便于|用于|用来)")


def _cjk_count(text: str) -> int:
    return len(re.findall(f"[{HAN}]", text))


def chinese(sentence: str) -> bool:
    """Whether a sentence is Chinese prose the rules read: Han characters, no Kana or Hangul."""
    return _cjk_count(sentence) >= _MIN_CJK and not re.search(f"[{KANA}{HANGUL}]", sentence)


def _clause_start(part: str, at: int) -> int:
    """Where the clause that holds position `at` begins."""
    before = [m.end() for m in _CLAUSE_END.finditer(part, 0, at)]
    return before[-1] if before else 0


def _asked(part: str, start: int, end: int, word: str) -> str:
    """The part with [start, end) replaced by `word`, cut after the clause that holds it, as a question.

    A clause that only sets a condition keeps the clause after it ("连续病假超过多少天的，须提供医院证明？"), and so
    does one whose purpose follows ("编辑什么文件，使 root 账户条目的第二段为空？").
    """
    opens = _clause_start(part, start)
    after = _CLAUSE_END.search(part, end)
    cut = after.start() if after else len(part)
    if after and (_PURPOSE.match(part, after.end()) or _CONDITION.search(part[opens:cut].strip())):
        following = _CLAUSE_END.search(part, after.end())
        cut = following.start() if following else len(part)
    head, tail = part[:start], part[end:cut]
    head = head[:-1] if head.endswith(" ") and re.search(f"[{HAN}]$", head[:-1]) else head  # "键入 Enter" ->键入什么
    tail = tail[1:] if tail.startswith(" ") and re.match(f" [{HAN}]", tail) else tail
    return (head + word + tail).strip().rstrip("。！!.，, ") + "？"


def _in_quotes(text: str) -> bool:
    """Whether `text` ends inside a quotation (“…” or the PDF's ”…” and "…")."""
    if "“" in text:
        return text.count("“") > text.count("”")
    return (text.count('"') + text.count("”")) % 2 == 1


def _open_parenthesis(text: str) -> bool:
    return text.count("(") > text.count(")") or text.count("（") > text.count("）")


def _count(part: str, m: re.Match[str], matches: list[re.Match[str]]) -> tuple[str, str] | None:
    """A count's answer and question word ("386人", "多少人"), or None when it is not a fact worth asking."""
    number, unit = m.group("n"), m.group("unit")
    if number in ("一", "1") or sum(1 for x in matches if x.group("unit") == unit) > 1:
        return None  # 一次, 一个: an article; two counts of one unit: which is asked is unclear
    before = part[: m.start()]
    if f"{number}{unit}" in ("两个", "两种", "2个", "2种") or re.search(r"[A-Za-z0-9)]\s*$", before):
        return None  # "合并两个文件", "cp(1) 和 mv(1) 两个命令": the things counted are named, not a fact
    if _in_quotes(before):
        return None  # "启用“两步验证”": a name, not a count
    return m.group(0).strip(), f"多少{unit}"


def _name(part: str, m: re.Match[str], matches: list[re.Match[str]]) -> tuple[str, str] | None:
    """A name's answer and question word ("touch(1)", "什么命令"), or None when it is not the thing named."""
    term, start = m.group("term").rstrip("-"), m.start()
    before = part[:start]
    if len(matches) > 1 or re.search(r"或|和|与|及", part[max(0, start - 2) : m.end() + 2]):
        return None  # "使用 A 或 B 命令": either answers
    if _COMPOUND.match(part, m.end()) or ("/" in term and term[0] not in "/~.$"):
        return None  # "Debian 软件包管理系统", "GNU/Linux 文件": the name qualifies a longer noun
    if _in_quotes(before) or re.search(r"[A-Za-z0-9)]\s$", before):
        return None  # the tail of a quoted command ("netstat -an") or of Latin words
    if (len(term) < 2 and term != "/") or _PLACEHOLDER.search(term) or term.casefold() in GENERIC:
        return None  # "X 服务端", "foo 软件包", "GUI 程序": nothing a reader asks for by name
    quoted = part[start] in _QUOTE or term[0] in "/~.$-"
    if not quoted and _QUANTIFIED.search(before):
        return None  # "许多 gdb(1) 命令", "你的 shell 程序"
    return term, f"什么{m.group('kind')}"


def questions_zh(sentence: str) -> list[tuple[str, str]]:
    """(question, short answer) pairs for one Chinese sentence; none when no rule fits."""
    text = _LABEL.sub("", _BULLET.sub("", sentence.strip()))
    if not chinese(text) or text[-1:] not in "。！":
        return []
    if _NEEDS_CONTEXT.match(text) or _POINTERS.search(text) or _SHELL.search(text) or _SECTION.match(text):
        return []
    if _LATIN_LEAD.match(text) or _CUT_START.match(text):
        return []
    out: list[tuple[str, str]] = []
    for part in filter(None, (p.strip() for p in re.split(r"[；;]", text))):
        if _NEEDS_CONTEXT.match(part) or _cjk_count(part) < _MIN_CJK or not 8 <= len(part) <= 90 or " – " in part:
            continue
        part = part if part.endswith(("。", "！")) else part + "。"
        found: list[tuple[int, int, str, str]] = []  # start, end, answer, question word
        if man := _MAN_PAGE.match(part):
            found.append((0, man.end("term"), man.group("term"), "哪个命令"))
        for word, pattern in _SPANS:
            matches = list(pattern.finditer(part))
            for m in matches:
                if any(m.start() < e and s < m.end() for s, e, _, _ in found):
                    continue  # 每十二个月 is a frequency, not also a count of months
                if word == "count":
                    asked = _count(part, m, matches)
                elif word == "kind":
                    asked = _name(part, m, matches)
                elif word == "哪里" and not re.search(f"[{HAN}]", m.group(0)):
                    asked = None
                else:
                    asked = m.group(0).strip(), word
                before = part[: m.start()]
                # Not what the sentence states: a cause ("由于 X 软件包使用…") or an aside ("jessie（2015 年发布）").
                cause = _CAUSE.search(before[_clause_start(part, m.start()) :])
                if asked is not None and not cause and not _open_parenthesis(before):
                    found.append((m.start(), m.end(), *asked))
        for start, end, answer, asks in found:
            question = _asked(part, start, end, asks)
            kept = _cjk_count(question) - _cjk_count(asks)
            if kept >= _MIN_ASKED and answer.casefold() not in question.casefold() and (question, answer) not in out:
                out.append((question, answer))
    return out
