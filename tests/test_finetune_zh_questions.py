"""Questions drawn from Chinese sentences: the answer's span replaced in place by its question word."""

from __future__ import annotations

import re

import pytest

from core import documents
from core.finetune import generate
from core.finetune.datasets import Pair
from core.finetune.zh_questions import questions_zh
from core.samples import CHINESE
from tests.test_finetune_generate import hit

NUMERALS = "零〇一二两三四五六七八九十百千万"


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("公司目前共有员工386人，其中研发人员约占四成。", [("公司目前共有员工多少人？", "386人")]),
        ("青梧科技有限公司由林若溪和顾北辰于2014年在杭州创立。",
         [("青梧科技有限公司由林若溪和顾北辰于哪一年在杭州创立？", "2014年")]),
        ("总部位于杭州市滨江区闻涛路88号，另在成都设有售后服务中心。", [("总部位于哪里？", "杭州市滨江区闻涛路88号")]),
        # A frequency is asked as one (多久), not also as a count of months; the clause after it is dropped.
        ("第三级为后置活性炭滤芯（型号 QW-AC3），建议每十二个月更换一次。",
         [("第三级为后置活性炭滤芯（型号 QW-AC3），建议多久更换一次？", "每十二个月")]),
        # A unit that opens with a numeral stays whole; a range answers as a whole.
        ("整机重约九点五千克。", [("整机重约多少千克？", "九点五千克")]),
        ("进水温度须在五至三十八摄氏度之间。", [("进水温度须在多少摄氏度之间？", "五至三十八摄氏度")]),
        # A clause that only sets a condition keeps the clause it conditions.
        ("连续病假超过三天的，须提供医院证明。", [("连续病假超过多少天的，须提供医院证明？", "三天")]),
        ("滤芯寿命指示灯变为红色，表示该滤芯的剩余寿命已不足百分之十。",
         [("滤芯寿命指示灯变为红色，表示该滤芯的剩余寿命已不足百分之多少？", "百分之十")]),
        # Names in Latin script, by the word for their kind, or as a manual page opening the sentence.
        ("使用 touch(1) 命令修改已存在文件的时间戳。", [("使用什么命令修改已存在文件的时间戳？", "touch(1)")]),
        ("可用的软件包源在”/etc/apt/sources.list” 文件里面定义。",
         [("可用的软件包源在什么文件里面定义？", "/etc/apt/sources.list")]),
        ("mount(8) 用于把某个设备上找到的文件系统附着到巨大的文件树上。",
         [("哪个命令用于把某个设备上找到的文件系统附着到巨大的文件树上？", "mount(8)")]),
        # A numeral is read whole, wherever the rule starts reading it.
        ("剩余寿命已不足百分之二十五。", [("剩余寿命已不足百分之多少？", "百分之二十五")]),
        ("公司于2014年3月在杭州成立，目前共有员工386人。",
         [("公司于2014年3月在杭州成立，目前共有员工多少人？", "386人")]),
        ("T3滤芯共有三支，每年更换两次。",
         [("T3滤芯共有多少支？", "三支"), ("T3滤芯共有三支，每年更换多少次？", "两次")]),
        # A clause saying what the one before is for goes with it.
        ("编辑”/etc/passwd” 文件，使 root 账户条目的第二段为空。",
         [("编辑什么文件，使 root 账户条目的第二段为空？", "/etc/passwd")]),
    ],
)  # fmt: skip
def test_a_chinese_sentence_is_asked_where_its_answer_stands(sentence: str, expected: list[tuple[str, str]]) -> None:
    assert questions_zh(sentence) == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "它们使你可以简单地将系统连接到网络。",  # a pronoun: needs the sentence before
        "这两个选项可以提升文件系统的读取效率。",
        "密码和数据的加密参见 crypt(3)。",  # a pointer elsewhere
        "员工每次出差须提前一天提交申请。",  # 一天, 一次: an article more often than a count
        "Debian 软件包管理系统有丰富的历史。",  # the name qualifies a longer noun
        "建议使用”apt full-upgrade” 或“apt-get dist-upgrade”来进行这个操作。",  # either answers
        "19 mai 2021 15:19:02 UTC 这里，date(1) 程序执行时使用了不同的语言环境值。",  # glued on by the PDF
        "提示 通过”netstat -an” 命令可以很方便的查看系统已经打开了哪些套接字。",
        "我认为习惯于使用 Vim 命令是一个明智的选择。",  # the author's voice
        "整机宽四百二十毫米、高四百五十毫米、深一百六十毫米。",  # which of three is asked is unclear
        "社員は毎年十五日の有給休暇を取得できます。",  # Japanese
        "按公司章程第三十八条处理。",  # an article's number, not a count of articles
        "工作满十二年的员工可申请长期休假。",  # a threshold, asked by no one as a count
        "The pump is serviced every six months.",
    ],
)
def test_a_chinese_sentence_no_rule_reads_well_gives_no_question(sentence: str) -> None:
    assert questions_zh(sentence) == []


def test_a_question_drawn_twice_with_different_answers_is_dropped_and_english_is_still_read() -> None:
    text = "vim(1) 是一个屏幕编辑器。\nemacs(1) 是一个屏幕编辑器。\n公司目前共有员工386人。\n"
    english = "The HX4 pump must be recalibrated every six months."
    assert generate.pairs_from_hits([hit(text), hit(english, index=1)]) == [
        Pair("公司目前共有员工多少人？", "386人", evidence="公司目前共有员工386人。"),
        Pair("How often must the HX4 pump be recalibrated?", "every six months", evidence=english),
    ]


def test_the_chinese_sample_gives_questions_whose_answer_is_in_their_sentence() -> None:
    hits = []
    for upload in CHINESE.uploads():
        doc = documents.parse(upload.data, upload.filename)
        hits += [hit(c.text, c.filename, c.index) for c in documents.split(doc, chunk_size=800, chunk_overlap=120)]
    pairs = generate.pairs_from_hits(hits)
    assert len(pairs) >= 30
    for pair in pairs:
        assert pair.question.endswith("？") and pair.answer in pair.evidence
        assert pair.answer not in pair.question
        assert not re.search(f"[{NUMERALS}]多少|多少(?!千[克米瓦])[{NUMERALS}]", pair.question), pair  # read whole
    asked = {p.question: p.answer for p in pairs}
    assert asked["公司目前共有员工多少人？"] == "386人"
    assert asked["T3 共有多少支滤芯？"] == "三支"


def test_a_line_wrapped_inside_a_chinese_word_joins_without_a_space_and_kana_is_not_called_chinese() -> None:
    pairs = generate.pairs_from_hits([hit("可用的软件包源在”/etc/apt/sources.list” 文\n件里面定义。")])
    assert [(p.question, p.answer) for p in pairs] == [("可用的软件包源在什么文件里面定义？", "/etc/apt/sources.list")]
    short = [hit("年假十五天。病假三天。请假要批准。")]  # Chinese, if too short for a rule
    assert "Japanese" not in generate.no_pairs_reason(short) and "Chinese sentences" in generate.no_pairs_reason(short)
