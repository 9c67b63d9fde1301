"""Questions drawn from a knowledge base: real questions with a short answer and the sentence behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core import documents
from core.config import Settings
from core.engine import EmbeddedEngine
from core.errors import ModelError
from core.finetune import datasets, generate
from core.finetune.datasets import Pair
from core.models import ModelCatalog
from core.samples import SAMPLES
from core.servers.ollama import OllamaServer
from core.store import SearchHit
from tests.test_ollama import DONE, chunk, ndjson, serve_show


def test_evidence_round_trips_and_old_files_load_without_it(data_dir: Path) -> None:
    folder = data_dir / "datasets"
    sentence = "The HX4 pump must be recalibrated every six months."
    pairs = [Pair("How often must the HX4 pump be recalibrated?", "every six months", evidence=sentence)]
    path = datasets.save_pairs(folder, "drawn", pairs)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"question": pairs[0].question, "answer": "every six months", "evidence": sentence}]
    assert datasets.load_pairs(folder, "drawn").pairs == pairs
    # Evidence is for review only: the dataset's version is its training content.
    assert datasets.content_hash(pairs) == datasets.content_hash([Pair(pairs[0].question, pairs[0].answer)])
    old = folder / "old.jsonl"
    old.write_text(json.dumps({"question": "Who founded it?", "answer": "Ilse Marrow."}) + "\n")
    assert datasets.load_pairs(folder, "old").pairs == [Pair("Who founded it?", "Ilse Marrow.")]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("The HX4 pump must be recalibrated every six months.",
         [("How often must the HX4 pump be recalibrated?", "every six months")]),
        ("Support is reached at extension 4410.", [("What extension is support reached at?", "4410")]),
        ("The company was founded in 2011 in Port Vellan by Ilse Marrow.",
         [("When was the company founded?", "in 2011"), ("Where was the company founded?", "in Port Vellan"),
          ("Who was the company founded by?", "Ilse Marrow")]),
        ("Brackenridge employs 214 people across three sites.", [("How many people does Brackenridge employ?", "214")]),
        ("The IT helpdesk is on internal extension 4040 and is staffed from 08:00 to 18:00 on working days.",
         [("What extension is the IT helpdesk on?", "4040"),
          ("When is the IT helpdesk staffed?", "from 08:00 to 18:00 on working days")]),
        ("Replace the wiper brush every six months (part HX-WB7).",
         [("How often should you replace the wiper brush?", "every six months")]),
        ("Basin manager: Oskar Lindqvist.", [("Who is the basin manager?", "Oskar Lindqvist")]),
        ("Studio membership costs 74 euros per month and includes a Night Key and one locker.",
         [("How much does studio membership cost?", "74 euros per month")]),
        ("The Green Card induction lasts 3 hours and runs every Tuesday and Saturday morning.",
         [("How long does the Green Card induction last?", "3 hours"),
          ("When does the Green Card induction run?", "every Tuesday and Saturday morning")]),
        ("The housing is made of titanium grade 2 and is rated to a depth of 120 metres.",
         [("What is the housing made of?", "titanium grade 2"), ("What depth is the housing rated to?", "120 metres")]),
        ("The first-aid kits are checked on the first Monday of each month.",
         [("When are the first-aid kits checked?", "on the first Monday of each month")]),
        ("Employees may work remotely up to three days per week.",
         [("How many days per week may employees work remotely?", "up to three")]),
        ("Lost or stolen equipment must be reported to the IT helpdesk within 24 hours.",
         [("How soon must lost or stolen equipment be reported to the IT helpdesk?", "within 24 hours")]),
        ("A full memory takes about 12 minutes to download over Bluetooth.",
         [("How long does a full memory take to download over Bluetooth?", "about 12 minutes")]),
        ("Carried-over days must be used by 31 March, after which they expire.",
         [("By when must carried-over days be used?", "by 31 March")]),
        ("Every employee has a personal learning budget of 1,800 euros per year for courses and books.",
         [("What personal learning budget does every employee have?", "1,800 euros per year")]),
        ("The test basin at Kelder Quay is 40 metres long, 12 metres wide and 6 metres deep.",
         [("How long is the test basin at Kelder Quay?", "40 metres")]),
        ("Fridays are Quiet Fridays.", [("What are Fridays called?", "Quiet Fridays")]),
        ("The harbour master is Ilse Marrow.", [("Who is the harbour master?", "Ilse Marrow")]),
        ("Salaries are reviewed once a year, with changes taking effect on 1 April.",
         [("How often are salaries reviewed?", "once a year")]),  # 1 April is when changes apply, not reviews
    ],
)  # fmt: skip
def test_a_sentence_becomes_the_questions_a_user_would_ask(sentence: str, expected: list[tuple[str, str]]) -> None:
    assert generate.questions_for(sentence, proper={"Brackenridge", "Kelder", "Quay"}) == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "It is reviewed every January by the People team.",  # the subject needs the sentence before
        "If you are ill, tell your manager before 10:00 on the first day of absence.",
        "Our mission is simple: make measurements of the ocean that people can trust.",
        "The default is 15 minutes.",  # "How long is the default?" asks about nothing in particular
        "Harassment, discrimination and bullying are not tolerated.",
        "New: bulk export of several sondes into one CSV file.",
        "How long does the warranty last?",
        "保修期为两年，自购买之日起计算。",
        "Tides are nice.",
        "The version you are reading is edition 9, approved on 14 January 2026.",
        # a list cut at its first comma would give a partial answer
        "Our instruments are used by harbour authorities, fish farms and research institutes in 31 countries.",
        "Remove the batteries if the sonde will be stored for more than one month.",
        "The sky is blue and the grass is green.",
        "Colorless green ideas sleep furiously.",
        "Support is available Monday to Friday, 07:00 to 19:00 Central European Time.",  # not "What is support?"
    ],
)
def test_a_sentence_no_rule_fits_gives_no_question(sentence: str) -> None:
    assert generate.questions_for(sentence) == []


@pytest.mark.parametrize(
    "sentence",
    [
        # Broken pairs the Debian Reference gave (issue 24), each dropped by a rule rather than emitted.
        "A filename is referred by the typewriter font between double quotation marks.",  # a convention
        "A command is referred by its name in the typewriter font.",  # "its name": a cut answer
        "The powerful design of Debian GNU/Linux comes from the Unix operating system.",  # "design" is a noun
        "Pipes were a very influential innovation of Unix.",  # "What were pipes?"
        "The device node number are displayed by executing ls(1) as the following.",  # "the following"
        "Typing in key strokes to the buffer is mostly done in INSERT-mode and REPLACE-mode.",  # a list cut
        "Most editors (eg. vim, emacs, gedit, …) can handle files in MSDOS style EOL transparently.",  # a name cut
        "The non-free-firmware area is described in Section 2.1.4.",  # "in Section"
        "The target release archive can be set by several methods.",  # a vague answer
        "The boot configuration is defined by variables stored in NVRAM, including variables that indicate the "
        "file system paths to OS loaders or OS kernels.",  # "variables stored"
        "Similar system on the memory is used by the Debian Installer.",  # "similar": context
        "The integrity of all package files are verified by using MD5sum values.",  # a broken sentence
        "The Debian Reference was initiated by me, Osamu Aoki, as a personal memo.",  # "me"
        "PolicyKit limits such operations to user accounts belonging to the sudo group on the Debian system.",
    ],
)
def test_a_broken_pair_from_a_real_manual_is_dropped(sentence: str) -> None:
    assert generate.questions_for(sentence, topic={"Debian"}) == []


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Avahi provides a framework for Multicast DNS Service Discovery on Debian.", []),  # the manual's topic
        ("Many useful GUI applications are available on Debian now.", []),
        ("Official policy of the Debian archive is defined at Debian Policy Manual, Chapter 2.",
         [("Where is official policy of the Debian archive defined?", "at Debian Policy Manual")]),
        ("XHTML can be processed by XML tools.", [("What can XHTML be processed by?", "XML tools")]),  # not "Who"
        ("Common Internet File System Protocol is used widely by Microsoft Windows.",
         [("Who is Common Internet File System Protocol used widely by?", "Microsoft Windows")]),  # a name kept
        ("Overtime is compensated as time off in lieu at a rate of 1.5 hours for every hour worked.",
         [("What rate is overtime compensated as time off in lieu at?", "1.5 hours for every hour worked")]),
    ],
)  # fmt: skip
def test_where_answers_name_more_than_the_topic_and_who_a_person_or_a_name(
    sentence: str, expected: list[tuple[str, str]]
) -> None:
    assert generate.questions_for(sentence, proper={"Debian", "Avahi"}, topic={"Debian"}) == expected


def test_topic_words_are_the_names_many_sentences_use() -> None:
    found = [f"Debian ships package {i} with Avahi." if i < 3 else f"Debian ships package {i}." for i in range(40)]
    assert generate.topic_words(found) == {"Debian"}


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("The less(1) command is the enhanced pager (file content browser).",
         ("Which command is the enhanced pager (file content browser)?", "less(1)")),
        ("who(1) shows who is logged on.", ("Which command shows who is logged on?", "who(1)")),
        ("The bash-completion package enables programmable completion for bash.",
         ("Which package enables programmable completion for bash?", "bash-completion")),
        ("The ”/init” program is executed as the first program in the root filesystem.",
         ("Which program is executed as the first program in the root filesystem?", "/init")),
        # A plain word is a name where the text writes it as one elsewhere (aptitude(8)).
        ("The aptitude command is the most versatile APT-based package management tool.",
         ("Which command is the most versatile APT-based package management tool?", "aptitude")),
        ("The dummy package enables a smooth transition of the package.", None),  # an ordinary noun phrase
        ("bootup(7) describes the system bootup process based on systemd.", None),  # section 7: an overview
        ("The ”$LANG” variable is referred first and it can be overridden.", None),  # "it" points elsewhere
        ("The make-kpkg command requires the kernel-package package (see Section 9.10).", None),
    ],
)  # fmt: skip
def test_a_named_command_package_or_file_opening_a_sentence_is_asked_which(
    sentence: str, expected: tuple[str, str] | None
) -> None:
    assert generate.named_subject(sentence, names={"aptitude"}) == expected


def test_a_question_two_sentences_answer_differently_is_not_drawn() -> None:
    text = (
        "The ed(1) command can replace all instances of a pattern in a file.\n"
        "The sed(1) command can replace all instances of a pattern in a file.\n"
        "The df(1) command reports the disk space usage for the file system.\n"
    )
    assert [(p.question, p.answer) for p in generate.pairs_from_hits([hit(text)])] == [
        ("Which command reports the disk space usage for the file system?", "df(1)")
    ]


def hit(text: str, filename: str = "handbook.pdf", index: int = 0) -> SearchHit:
    return SearchHit(text, 1.0, "doc", filename, 1, index, None)


def test_pairs_from_hits_keep_the_sentence_as_evidence_once_each_in_reading_order() -> None:
    text = (
        "Brackenridge Tidal Systems - Employee Handbook\nWorking hours\n"
        "Brackenridge employs 214 people across three\nsites. It is reviewed every January by Brackenridge.\n"
        "- Replace the wiper brush every six months (part HX-WB7).\n"
        "Page 3"
    )
    pairs = generate.pairs_from_hits([hit(text), hit(text, index=1)])
    assert pairs == [
        Pair("How many people does Brackenridge employ?", "214",
             evidence="Brackenridge employs 214 people across three sites."),
        Pair("How often should you replace the wiper brush?", "every six months",
             evidence="Replace the wiper brush every six months (part HX-WB7)."),
    ]  # fmt: skip
    assert generate.pairs_from_hits([hit(text)], limit=1) == pairs[:1]


def test_the_sample_knowledge_bases_give_questions_with_answers_found_in_their_sentence() -> None:
    for sample in (SAMPLES["brackenridge"], SAMPLES["corvane"]):
        hits = []
        for upload in sample.uploads():
            doc = documents.parse(upload.data, upload.filename)
            hits += [hit(c.text, c.filename, c.index) for c in documents.split(doc, chunk_size=800, chunk_overlap=120)]
        pairs = generate.pairs_from_hits(hits)
        assert len(pairs) >= 20, sample.kb_name
        for pair in pairs:
            assert pair.question.endswith("?") and pair.question[0].isupper()
            assert pair.answer.lower() in pair.evidence.lower()
            assert not pair.question.startswith("What does")


def ollama_catalog(host: str) -> ModelCatalog:
    return ModelCatalog(Settings.from_env(ollama_host=host), EmbeddedEngine(), OllamaServer(host, timeout=5))


def test_an_ollama_model_writes_the_questions_and_unfounded_ones_are_dropped(httpserver: HTTPServer) -> None:
    requests: list[dict[str, Any]] = []
    reply = {
        "pairs": [
            {"sentence": 1, "question": "How often must the HX4 pump be recalibrated?", "answer": "every six months"},
            {"sentence": 2, "question": "What extension reaches support", "answer": "4410."},
            {"sentence": 2, "question": "Who answers the phone?", "answer": "Mara Quell"},  # not in the sentence
            {"sentence": 7, "question": "What is the capital of France?", "answer": "Paris"},  # no such sentence
        ]
    }

    def chat(request: Request) -> Response:
        requests.append(json.loads(request.data))
        text = json.dumps(reply)
        return Response(ndjson(chunk(text[:40]), chunk(text[40:]), DONE), content_type="application/x-ndjson")

    serve_show(httpserver)
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat)
    text = "# Maintenance\nThe HX4 pump must be recalibrated every six months.\nSupport is reached at extension 4410."
    reports: list[tuple[int, int, str]] = []
    pairs = generate.pairs_written_by(
        ollama_catalog(httpserver.url_for("/").rstrip("/")),
        "ollama:llama3.2:1b",
        [hit(text, "hx4_manual.md")],
        progress=lambda done, total, message: reports.append((done, total, message)),
    )
    assert pairs == [
        Pair("How often must the HX4 pump be recalibrated?", "every six months",
             evidence="The HX4 pump must be recalibrated every six months."),
        Pair("What extension reaches support?", "4410", evidence="Support is reached at extension 4410."),
    ]  # fmt: skip
    [request] = requests
    assert request["model"] == "llama3.2:1b" and request["options"]["temperature"] == 0.0
    assert request["messages"][0] == {"role": "system", "content": generate.WRITER_SYSTEM}
    assert request["messages"][1]["content"] == (
        "Document: hx4_manual\n\n1. The HX4 pump must be recalibrated every six months.\n"
        "2. Support is reached at extension 4410."
    )
    assert reports[0][:2] == (0, 1) and reports[-1] == (1, 1, "2 questions written")


def test_a_reply_that_is_not_json_gives_no_pairs_and_a_missing_model_says_how_to_get_it(
    httpserver: HTTPServer,
) -> None:
    serve_show(httpserver)
    httpserver.expect_oneshot_request("/api/chat", method="POST").respond_with_data(
        ndjson(chunk("Here are some questions: 1. What?"), DONE), content_type="application/x-ndjson"
    )
    catalog = ollama_catalog(httpserver.url_for("/").rstrip("/"))
    hits = [hit("The HX4 pump must be recalibrated every six months.")]
    assert generate.pairs_written_by(catalog, "ollama:llama3.2:1b", hits) == []
    httpserver.expect_request("/api/chat", method="POST").respond_with_json(
        {"error": "model 'qwen3:8b' not found"}, status=404
    )
    with pytest.raises(ModelError, match=r"ollama pull qwen3:8b"):
        generate.pairs_written_by(catalog, "ollama:qwen3:8b", hits)


@pytest.mark.parametrize(
    ("texts", "reason"),
    [
        ([], "has no documents yet"),
        (["病假需提供医院开具的证明。报销请走系统流程！"], "None of its 2 sentences fits a rule: Chinese"),
        (["社員は毎年十五日の有給休暇を取得できます。"], "Japanese or Korean text is not supported yet"),
        ([" ".join(["debian"] * 70 + ["packages", "are", "installed"] * 10)],
         "almost no sentence ends (1 sentence in 100 words)"),
        (["- apt-get update\n- apt-get upgrade\n\n# Commands\n\nRun these as root."], "None of its"),
    ],
)  # fmt: skip
def test_when_no_question_comes_out_the_reason_says_why_and_what_to_do(texts: list[str], reason: str) -> None:
    hits = [hit(t, index=i) for i, t in enumerate(texts)]
    assert generate.pairs_from_hits(hits) == []
    said = generate.no_pairs_reason(hits)
    assert reason in said
    assert texts == [] or "Ollama model write the questions" in said
