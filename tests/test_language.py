"""Documents' languages, and knowledge bases that take the model and analyser fitting them (real store, real models)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import language
from core.config import Settings
from core.embeddings import BUNDLED_MODEL, MULTILINGUAL_MODEL, EmbeddingCatalog, EmbeddingModel
from core.ingest import Upload, ingest
from core.samples import CHINESE, ENGLISH
from core.store import Store

ZH_MANUAL = "T3净水器用户手册.txt"


def sample_text(sample_uploads: list[Upload], name: str) -> str:
    return next(u.data for u in sample_uploads if u.filename == name).decode("utf-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The ferry to Skellig Mor leaves Pier 4 at 08:15 every weekday, and the return is at noon.", "en"),
        ("青梧科技成立于2014年，总部位于杭州，现有员工386人。", "zh"),
        # Chinese prose around commands and paths, as a translated manual has it.
        ("可以在 Bash 脚本文件“~/.bash_profile”或“~/.bashrc”中改变“$PATH”环境变量的值。", "zh"),
        ("在”/etc/apt/sources.list” 文件中设置 deb http://deb.debian.org/debian/ bookworm main contrib。", "mixed"),
        (
            "The T3 净水器 (water purifier) has a filter life of twelve months; a technician replaces the RO membrane "
            "every two years.",
            "en",
        ),
        (
            "Le système Debian utilise par défaut un groupe privé pour chaque utilisateur et la commande est simple.",
            "other",
        ),
        ("Das Debian-System verwendet standardmäßig eine private Gruppe für jeden Benutzer, und das ist gut.", "other"),
        ("デフォルトの Debian システムには、切り替え可能な文字コンソールが6つあります。", "ja"),
        ("기본 데비안 시스템에는 전환 가능한 문자 콘솔이 여섯 개 있습니다.", "ko"),
        ("12 34 56 — 78", None),
    ],
)
def test_detect(text: str, expected: str | None) -> None:
    assert language.detect(text) == expected


def test_the_samples_read_as_their_languages() -> None:
    for upload in ENGLISH.uploads():
        if upload.filename.endswith((".md", ".txt")):
            assert language.detect(upload.data.decode("utf-8")) == "en", upload.filename
    for upload in CHINESE.uploads():
        assert language.detect(upload.data.decode("utf-8")) == "zh", upload.filename


def test_a_sample_is_drawn_from_across_the_pages() -> None:
    pages = ["English words here. " * 500, "中文的句子在这里。" * 500]
    text = language.sample(pages, limit=1000)
    assert len(text) <= 1001 and "English" in text and "中文" in text


@pytest.mark.parametrize(
    ("languages", "expected"),
    [(["en", "en"], "en"), (["zh", None], "zh"), (["en", "zh"], "mixed"), (["en", "other"], "other"), ([None], None)],
)
def test_combined(languages: list[str | None], expected: str | None) -> None:
    assert language.combined(languages) == expected


def test_fit_and_mismatch() -> None:
    assert language.fit("zh") == language.Fit(MULTILINGUAL_MODEL, "chinese")
    assert language.fit("mixed") == language.Fit(MULTILINGUAL_MODEL, "chinese")
    assert language.fit(None) == language.fit("en") == language.Fit(BUNDLED_MODEL, "english")
    why = language.mismatch("zh", BUNDLED_MODEL, "english")
    assert why is not None and "English-only" in why and MULTILINGUAL_MODEL in why and "chinese analyser" in why
    assert language.mismatch("zh", "tuned:handbook-r1", "chinese") is not None  # tuned from MiniLM: English only
    assert language.mismatch("zh", MULTILINGUAL_MODEL, "english") is None
    assert language.mismatch("zh", "ollama:bge-m3", "english") is None  # the user's own model: not ours to judge
    assert language.mismatch("en", BUNDLED_MODEL, "english") is None
    # A short note with markup reads as "other": never held from an English knowledge base for that.
    assert language.detect("Gate code is 7781. <script>alert('owned')</script> <img src=x onerror=alert(1)>") == "other"
    assert language.mismatch("other", BUNDLED_MODEL, "english") is None


@pytest.fixture(scope="module")
def catalog(minilm: EmbeddingModel) -> EmbeddingCatalog:
    """MiniLM and multilingual E5, each loaded once for the module."""
    catalog = EmbeddingCatalog(ollama_host=None, preloaded=[minilm])
    catalog.get(MULTILINGUAL_MODEL)
    return catalog


@pytest.fixture
def fitting_store(settings: Settings, minilm: EmbeddingModel, catalog: EmbeddingCatalog) -> Iterator[Store]:
    """Qdrant local mode in the test's DATA_DIR, opened as the app opens it (MiniLM, and a catalog for E5)."""
    with Store.open(settings, minilm, catalog) as store:
        yield store


@pytest.mark.slow
def test_a_knowledge_base_without_a_chosen_model_fits_its_first_chinese_documents(fitting_store: Store) -> None:
    store = fitting_store
    created = store.create_kb("auto", chunk_size=800, chunk_overlap=120)
    assert (created.embedding_model, created.analyser, created.auto_model) == (BUNDLED_MODEL, "english", True)
    reports = ingest(store, "auto", CHINESE.uploads(), hold_mismatched=True)
    assert [r.status for r in reports] == ["added"] * len(reports), reports
    assert all(r.language == "zh" and "Note" not in r.message for r in reports)
    kb = store.get_kb("auto")
    assert (kb.embedding_model, kb.analyser, kb.retrieval_mode) == (MULTILINGUAL_MODEL, "chinese", "hybrid")
    assert not kb.auto_model and not kb.auto_analyser and kb.created == created.created
    assert {d.language for d in store.list_documents("auto")} == {"zh"}
    hits = store.search("auto", "T3净水器的滤芯多久更换一次？", k=3)
    assert hits and hits[0].filename in {d.filename for d in store.list_documents("auto")}


@pytest.mark.slow
def test_an_english_knowledge_base_holds_a_chinese_document_back_or_notes_it(fitting_store: Store) -> None:
    store = fitting_store
    store.create_kb("handbook", chunk_size=800, chunk_overlap=120)
    english = [u for u in ENGLISH.uploads() if u.filename.endswith(".md")]
    assert [r.status for r in ingest(store, "handbook", english)] == ["added"]
    kb = store.get_kb("handbook")
    assert (kb.embedding_model, kb.analyser, kb.auto_model) == (BUNDLED_MODEL, "english", False)
    assert store.list_documents("handbook")[0].language == "en"
    chinese = [u for u in CHINESE.uploads() if u.filename == ZH_MANUAL]

    held = ingest(store, "handbook", chinese, hold_mismatched=True)
    assert held[0].status == "held" and held[0].language == "zh"
    assert "English-only" in held[0].message and MULTILINGUAL_MODEL in held[0].message
    assert [d.filename for d in store.list_documents("handbook")] == [english[0].filename]  # nothing stored
    assert store.count_chunks("handbook") == store.list_documents("handbook")[0].chunks

    noted = ingest(store, "handbook", chinese)  # a script that did not ask to hold: stored, but not silently
    assert noted[0].status == "added" and "English-only" in noted[0].message
    assert store.get_kb("handbook").embedding_model == BUNDLED_MODEL  # an existing knowledge base is never refitted


@pytest.mark.slow
def test_a_knowledge_base_made_for_known_documents_or_a_chosen_model(fitting_store: Store) -> None:
    store = fitting_store
    zh = store.create_kb("zh", chunk_size=800, chunk_overlap=120, language="mixed")
    assert (zh.embedding_model, zh.analyser, zh.auto_model, zh.auto_analyser) == (
        MULTILINGUAL_MODEL,
        "chinese",
        False,
        False,
    )
    chosen = store.create_kb("chosen", chunk_size=800, chunk_overlap=120, embedding_model=BUNDLED_MODEL)
    assert chosen.auto_analyser and not chosen.auto_model
    chinese = [u for u in CHINESE.uploads() if u.filename == ZH_MANUAL]
    ingest(store, "chosen", chinese)
    kb = store.get_kb("chosen")
    assert (kb.embedding_model, kb.analyser) == (BUNDLED_MODEL, "chinese")  # the model stays the user's choice
    dense = store.create_kb("dense", chunk_size=800, chunk_overlap=120, analyser=None)
    assert dense.retrieval_mode == "dense"
    ingest(store, "dense", chinese)
    kb = store.get_kb("dense")
    assert (kb.embedding_model, kb.analyser, kb.retrieval_mode) == (MULTILINGUAL_MODEL, None, "dense")
