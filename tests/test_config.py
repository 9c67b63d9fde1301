from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import Settings, cpu_threads
from core.errors import ConfigError


def test_defaults_use_local_mode_under_data_dir(data_dir: Path) -> None:
    s = Settings.from_env()
    assert s.data_dir == data_dir
    assert s.qdrant_url is None
    assert s.local_qdrant_path == data_dir / "qdrant"
    assert "local mode" in s.describe_qdrant()


def test_environment_then_explicit_arguments_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://qdrant.internal:6333")
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("RAGTUNE_MAX_UPLOAD_MB", "7")
    s = Settings.from_env()
    assert (s.qdrant_url, s.max_upload_bytes, s.local_qdrant_path) == (
        "http://qdrant.internal:6333",
        7 * 1024 * 1024,
        tmp_path / "elsewhere",
    )
    assert s.describe_qdrant() == "Qdrant server at http://qdrant.internal:6333"
    assert Settings.from_env(qdrant_url=None, max_upload_mb=3).max_upload_mb == 3


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RAGTUNE_MAX_UPLOAD_MB", "lots", "not a whole number"),
        ("RAGTUNE_CHUNK_SIZE", "-5", "must be positive"),
        ("RAGTUNE_CHUNK_OVERLAP", "5000", "must be smaller than chunk size"),
    ],
)
def test_bad_settings_say_what_to_set(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        Settings.from_env()


def test_the_suite_never_points_at_a_real_ollama() -> None:
    assert Settings.from_env().ollama_host is None


def test_threads_follow_ragtune_threads_and_a_bad_value_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGTUNE_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.delenv("RAGTUNE_THREADS")
    assert cpu_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("RAGTUNE_THREADS", "all")
    with pytest.raises(ConfigError, match="RAGTUNE_THREADS='all' is not a whole number"):
        cpu_threads()
