from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import TemplateError
from core.excerpts import excerpt, sentences
from core.prompts import Example, PromptTemplate, Source, completion_from_messages, fields_of
from core.template_library import BUILTINS, RETIRED_BUILTINS, TemplateLibrary

RAG = next(t for t in BUILTINS if t.name == "RAG with citations")
PE = next(t for t in BUILTINS if t.name == "Few-shot assistant")


def template(user: str, system: str = "Be brief.", **kw: object) -> PromptTemplate:
    return PromptTemplate(name="t", system=system, user=user, **kw)  # type: ignore[arg-type]


# (system, user, source format, error fragment or None when valid)
CASES = [
    ("Be brief.", "{question}", None, None),
    ("Be brief.", "Sources:\n{context}\n\nQ: {question}", None, None),
    ("Examples:\n{examples}", "{question}", None, None),
    ("Use {{braces}} literally.", "{question}", None, None),
    ("Be brief.", "Tell me about {question.__class__}", None, "no attribute or index access"),
    ("Be brief.", "{context[0]} {question}", None, "no attribute or index access"),
    ("{question.__init__.__globals__}", "{question}", None, "no attribute or index access"),
    ("Be brief.", "{} {question}", None, "positional fields"),
    ("Be brief.", "{0} {question}", None, "positional fields"),
    ("Be brief.", "{question!r}", None, "conversion or format spec"),
    ("Be brief.", "{question:>10}", None, "conversion or format spec"),
    ("Be brief.", "{question} {user} {secret}", None, "unknown variable(s) {secret}, {user}"),
    ("Hello {name}", "{question}", None, "system prompt: unknown variable(s) {name}"),
    ("Be brief.", "No question here", None, "must contain {question}"),
    ("Be brief.", "", None, "user template is empty"),
    ("Be brief.", "{question", None, "unbalanced braces"),
    ("Be brief.", "{context} {question}", "[{n}] {url}: {text}", "source format: unknown variable(s) {url}"),
]


@pytest.mark.parametrize(("system", "user", "source_format", "error"), CASES)
def test_template_validation_table(system: str, user: str, source_format: str | None, error: str | None) -> None:
    kw = {"source_format": source_format} if source_format else {}
    t = template(user, system, **kw)
    if error is None:
        t.validate()
    else:
        with pytest.raises(TemplateError) as info:
            t.validate()
        assert error in str(info.value)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(TemplateError) as info:
        template("{nope}", "{also_nope}").validate()
    message = str(info.value)
    assert "{also_nope}" in message and "{nope}" in message and "must contain {question}" in message


def test_rendering_never_evaluates_fields() -> None:
    t = template("{question}")
    [system, user] = t.render("{question.__class__} and {context}")
    assert user["content"] == "{question.__class__} and {context}"
    assert system == {"role": "system", "content": "Be brief."}


def test_few_shot_examples_become_chat_turns() -> None:
    messages = PE.render("How long is parental leave?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == PE.examples[0].question
    assert messages[-1]["content"] == "How long is parental leave?"


def test_examples_variable_places_examples_as_text() -> None:
    t = template("{examples}\n\nQ: {question}", examples=(Example("Two plus two?", "Four."),))
    messages = t.render("Three plus three?")
    assert len(messages) == 2
    assert messages[1]["content"] == "Q: Two plus two?\nA: Four.\n\nQ: Three plus three?"


def test_sources_are_numbered_by_the_source_format() -> None:
    sources = [Source("handbook.pdf", 5, "Parental leave is 20 weeks."), Source("faq.txt", 2, "Ask HR.")]
    numbered = template("Sources:\n{context}\n\nQuestion: {question}")
    user = numbered.render("How long is parental leave?", sources)[-1]["content"]
    assert "[1] handbook.pdf, page 5:\nParental leave is 20 weeks." in user
    assert "[2] faq.txt, page 2:\nAsk HR." in user
    assert user.endswith("Question: How long is parental leave?")


def test_builtin_rag_lists_the_matching_sentences_unnumbered() -> None:
    chunk = "Time off\nAnnual leave is 27 days. Parental leave is 20 weeks at full pay. The canteen opens at 07:30."
    sources = [Source("handbook.pdf", 5, chunk), Source("faq.txt", 2, "Ask HR.")]
    user = RAG.render("How long is parental leave at full pay?", sources)[-1]["content"]
    assert user == (
        "Text:\nParental leave is 20 weeks at full pay. The canteen opens at 07:30. Ask HR.\n\n"
        "Question: How long is parental leave at full pay?\n\n"
        "Copy the sentence of the text that answers the question."
    )
    assert "[1]" not in user and "handbook.pdf" not in user


def test_sources_are_joined_by_the_template_separator() -> None:
    sources = [Source("a.txt", 1, "One."), Source("b.txt", 1, "Two.")]
    for separator in ("\n\n", "\n", " | "):
        t = template("{context}\n{question}", source_format="{text}", source_separator=separator)
        assert t.render("q", sources)[-1]["content"] == f"One.{separator}Two.\nq"


def test_separator_survives_export_and_is_part_of_the_text() -> None:
    t = template("{context}\n{question}", source_separator=" ")
    assert PromptTemplate.from_json(t.to_json()).source_separator == " "
    old = PromptTemplate.from_json('{"name": "x", "system": "", "user": "{question}"}')  # a file from before
    assert old.source_separator == "\n\n"


PDF_PAGE = (
    "Acme - Manual, rev. F\n"
    "Self-Use. This is the mode the battery is set to when it leaves the factory. Surplus solar power\n"
    "charges the battery during the day.\n"
    "- Operating temperature: -10 °C to 45 °C\n"
    "- Support line: 0330 014 7720, open from 08:00 to 20:00 on weekdays and from 09:00 to 14:00 on\n"
    "Saturdays.\n"
    "# Warranty\n"
    "The warranty lasts 10 years from the date\n"
    "of commissioning."
)


def test_sentences_join_the_lines_a_pdf_wrapped_and_keep_list_items_apart() -> None:
    assert sentences(PDF_PAGE) == [
        "Acme - Manual, rev. F",
        "Self-Use. This is the mode the battery is set to when it leaves the factory.",  # a label, with its sentence
        "Surplus solar power charges the battery during the day.",  # a long line cut mid-sentence, joined
        "- Operating temperature: -10 °C to 45 °C",
        "- Support line: 0330 014 7720, open from 08:00 to 20:00 on weekdays and from 09:00 to 14:00 on Saturdays.",
        "# Warranty",
        "The warranty lasts 10 years from the date of commissioning.",  # a line going on in lower case
    ]


def test_sentences_of_chinese_text_join_without_spaces() -> None:
    assert sentences("青梧科技成立于2015年。总部位于杭州\n，员工386人！\n- 产品") == [
        "青梧科技成立于2015年。",
        "总部位于杭州，员工386人！",
        "- 产品",
    ]


def test_excerpt_of_a_wrapped_pdf_line_holds_the_whole_sentence() -> None:
    got = excerpt(PDF_PAGE, "When does the support line open on Saturdays?")
    assert "from 09:00 to 14:00 on Saturdays." in got


TEXT = "Leave\nAnnual leave is 27 days. Parental leave is 20 weeks. Ask HR for the form. The canteen opens at 07:30."


@pytest.mark.parametrize(
    ("question", "n", "expected"),
    [
        ("How long is parental leave?", 1, "Parental leave is 20 weeks. Ask HR for the form."),  # and the next one
        ("When does the canteen open?", 1, "The canteen opens at 07:30."),  # the last has no next
        (
            "Parental leave, and the canteen?",
            2,
            "Parental leave is 20 weeks. Ask HR for the form. The canteen opens at 07:30.",
        ),
        ("What does it cost?", 1, "Leave Annual leave is 27 days."),  # nothing matches: the first
        ("", 9, TEXT.replace("\n", " ")),
    ],
)
def test_excerpt_keeps_the_best_sentences_and_their_next_in_text_order(question: str, n: int, expected: str) -> None:
    assert excerpt(TEXT, question, n) == expected


ZH_TEXT = (
    "青梧科技成立于2014年。公司总部位于杭州。核心工作时间为每周一至周四上午十点至下午四点。"
    "员工可以远程办公。加班按一点五倍折算为调休。"
)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("公司的核心工作时间是什么时候？", "核心工作时间为每周一至周四上午十点至下午四点。 员工可以远程办公。"),
        ("加班怎么折算？", "加班按一点五倍折算为调休。"),
        ("青梧科技是哪一年成立的？", "青梧科技成立于2014年。 公司总部位于杭州。"),
    ],
)
def test_a_chinese_excerpt_is_chosen_by_the_characters_it_shares_with_the_question(
    question: str, expected: str
) -> None:
    # Chinese writes no spaces: matched whole, no sentence shares a "word" with the question and the first one
    # was taken; on the Chinese sample the excerpts then kept 12 of the 29 answers retrieval found, now 27.
    assert excerpt(ZH_TEXT, question) == expected


def test_a_chinese_excerpt_does_not_end_on_the_few_characters_a_chunk_was_cut_at() -> None:
    """Seen on a real Chinese manual: the excerpt stopped mid-sentence ("…为起点。 和大")."""
    chunk = "配置文件位于家目录。 每个用户的设置以家目录为起点。 和大"
    assert excerpt(chunk, "用户的设置以什么为起点？") == "每个用户的设置以家目录为起点。"
    whole = "每个用户的设置以家目录为起点。 和大多数程序一样。"
    assert excerpt(chunk + "多数程序一样。", "用户的设置以什么为起点？") == whole
    command = "用 wall 给每一个人发送信息。 echo hi | wall"  # a last line without an end: kept, it may be the answer
    assert excerpt(command, "用什么给每一个人发送信息？") == command


def test_unedited_earlier_builtin_is_upgraded_and_an_edited_one_kept(tmp_path: Path) -> None:
    old = RETIRED_BUILTINS[0]
    library = TemplateLibrary(tmp_path / "a")
    for v in library.versions(old.name):
        (tmp_path / "a" / "rag_with_citations" / f"v{v}.json").unlink()
    library.save(old)
    upgraded = TemplateLibrary(tmp_path / "a")
    assert upgraded.versions(old.name) == [1, 2] and upgraded.get(old.name).user == RAG.user
    assert TemplateLibrary(tmp_path / "a").versions(old.name) == [1, 2]  # once only
    edited = TemplateLibrary(tmp_path / "b")
    edited.save(replace(RAG, system="Mine."))
    assert TemplateLibrary(tmp_path / "b").get(RAG.name).system == "Mine."


@pytest.mark.parametrize(
    ("t", "sources", "error"),
    [
        (RAG, None, "needs {context} but retrieval is off"),
        (PE, [Source("a.txt", 1, "x")], "has no {context}"),
    ],
)
def test_retrieval_and_template_must_agree(t: PromptTemplate, sources: list[Source] | None, error: str) -> None:
    with pytest.raises(TemplateError, match=error):
        t.render("q", sources)


@pytest.mark.parametrize(
    ("question", "chinese"),
    [
        ("净水器的滤芯多久更换一次？", True),
        ("青梧科技的客服电话是多少", True),
        ("How long is parental leave at full pay?", False),
        ("What does the 青梧 handbook say about parental leave?", False),  # an English question naming a 青梧
        ("", False),
    ],
)
def test_a_chinese_question_asks_for_a_chinese_answer_last_in_the_prompt(question: str, chinese: bool) -> None:
    for t, sources in ((PE, None), (RAG, [Source("手册.md", 1, "滤芯每六个月更换一次。")])):
        messages = t.render(question, sources)
        assert messages[-1]["content"].endswith("\n\n请用中文回答。") is chinese
        assert sum("请用中文回答" in m["content"] for m in messages) == int(chinese)  # once, not in examples


def test_no_sources_found_is_said_in_the_prompt() -> None:
    assert "(no matching passages were found)" in RAG.render("q", [])[-1]["content"]


def test_library_seeds_builtins_saves_versions_and_diffs(tmp_path: Path) -> None:
    lib = TemplateLibrary(tmp_path / "templates")
    assert sorted(lib.names()) == sorted(t.name for t in BUILTINS)
    first = lib.get(RAG.name)
    assert first.version == 1
    edited = PromptTemplate(**{**first.__dict__, "system": first.system + " Never guess."})
    second = lib.save(edited)
    assert second.version == 2 and lib.versions(RAG.name) == [1, 2]
    assert lib.get(RAG.name).system.endswith("Never guess.")
    assert lib.get(RAG.name, 1).system == RAG.system
    diff = lib.diff(RAG.name, 1, 2)
    assert "-" + RAG.system in diff and "+" + RAG.system + " Never guess." in diff
    # Reopening does not reseed or lose versions.
    assert TemplateLibrary(tmp_path / "templates").versions(RAG.name) == [1, 2]


def test_invalid_template_is_not_saved(tmp_path: Path) -> None:
    lib = TemplateLibrary(tmp_path / "templates")
    with pytest.raises(TemplateError):
        lib.save(template("{question.__class__}"))
    assert "t" not in lib.names()


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    lib = TemplateLibrary(tmp_path / "templates")
    exported = lib.get(PE.name).to_json()
    imported = PromptTemplate.from_json(exported)
    assert imported == lib.get(PE.name)
    renamed = PromptTemplate.from_json(exported.replace(PE.name, "Imported few-shot"))
    assert lib.save(renamed).version == 1


@pytest.mark.parametrize(
    "payload", [b"not json", b"[1, 2]", b'{"name": "x"}', b'{"name": "x", "system": "", "user": "{q}", "bogus": 1}']
)
def test_importing_a_bad_file_says_so(payload: bytes) -> None:
    with pytest.raises(TemplateError, match="Not a template file"):
        PromptTemplate.from_json(payload)


def test_fields_of_lists_plain_names() -> None:
    assert fields_of("{question} and {context} and {{literal}}") == {"question", "context"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"name": "t", "system": 1, "user": "{question}"}', "system: Input should be a valid string"),
        (
            '{"name": "t", "system": "", "user": "{question}", "examples": [{"question": 1, "answer": "a"}]}',
            "examples.0.question: Input should be a valid string",
        ),
        ('{"name": "t", "system": "", "user": "{question}", "examples": [{"question": "q"}]}', "examples.0.answer"),
        ('{"name": "t", "system": "", "user": "{question}", "temperature": 2}', "temperature: Extra inputs"),
        ('{"name": "t", "system": "", "user": "{question}", "version": "3"}', "version: Input should be a valid int"),
        ('{"name": "t", "system": ""}', "user: Field required"),
        ("[1, 2]", "Input should be an object"),
        ("not json", "Invalid JSON"),
    ],
)
def test_imported_templates_are_checked_field_by_field(text: str, error: str) -> None:
    with pytest.raises(TemplateError) as info:
        PromptTemplate.from_json(text)
    assert error in str(info.value) and "export one from the Prompts page" in str(info.value)


def test_an_exported_template_imports_unchanged() -> None:
    assert PromptTemplate.from_json(PE.to_json()) == PE


@pytest.mark.parametrize(
    "name", ["rag with citations", "RAG_with_citations", "RAG  with  citations", "rag with citations "]
)
def test_names_differing_in_case_or_spaces_do_not_overwrite_a_template(tmp_path: Path, name: str) -> None:
    library = TemplateLibrary(tmp_path / "templates")
    with pytest.raises(TemplateError, match="too close to the existing template 'RAG with citations'"):
        library.save(PromptTemplate(name=name, system="Mine.", user="{question}"))
    assert library.versions("RAG with citations") == [1]
    assert library.get("RAG with citations").system == RAG.system
    assert library.save(RAG).version == 2  # the exact name still makes a new version


def test_the_completion_form_keeps_examples_sources_and_question_in_the_questions_language() -> None:
    zh = RAG.render_completion("年假有几天？", [Source("手册.txt", 1, "员工每年享有十五天带薪年假。")])
    assert zh == "文本：员工每年享有十五天带薪年假。\n问题：年假有几天？\n答案："
    en = PE.render_completion("What is the capital of Italy?")
    assert en.startswith("Question: What is the capital of France?\nAnswer: Paris.\nQuestion: How many days")
    assert en.endswith("\nQuestion: What is the capital of Italy?\nAnswer:")
    assert "knowledge-base assistant" not in en  # the system prompt is an instruction a base model does not follow
    with pytest.raises(TemplateError, match="needs \\{context\\} but retrieval is off"):
        RAG.render_completion("Anything?")


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"role": "user", "content": "Text: x\nQuestion: y\nAnswer:"}], "Text: x\nQuestion: y\nAnswer:"),
        ([{"role": "user", "content": "Hi?"}], "Question: Hi?\nAnswer:"),
        (
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
            "Question: Hi?\nAnswer:",  # as render_completion: a base model follows no instructions
        ),
        (
            [
                {"role": "user", "content": "一？"},
                {"role": "assistant", "content": "一。"},
                {"role": "user", "content": "二？"},
            ],
            "问题：一？\n答案：一。\n问题：二？\n答案：",
        ),
    ],
)
def test_chat_messages_in_completion_form(messages: list[dict[str, str]], expected: str) -> None:
    assert completion_from_messages(messages) == expected
