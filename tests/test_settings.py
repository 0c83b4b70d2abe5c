"""Settings: one YAML file, overrides from the environment and the CLI, clear errors."""

from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.settings import PROJECT_ROOT, load_settings


def test_defaults_resolve_paths_against_the_project():
    settings = load_settings()
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.llm.provider == "local" and settings.embedding.model == "e5-small-offline"


def test_environment_and_explicit_overrides(monkeypatch):
    monkeypatch.setenv("FAZHI__LLM__PROVIDER", "extractive")
    monkeypatch.setenv("FAZHI__RETRIEVAL__TOP_K", "9")
    settings = load_settings(overrides={"retrieval.top_k": "4"})
    assert settings.llm.provider == "extractive" and settings.retrieval.top_k == 4


def test_partial_file_keeps_defaults(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("chroma:\n  mode: server\n  port: 9000\n", encoding="utf-8")
    settings = load_settings(path)
    assert settings.chroma.mode == "server" and settings.chroma.port == 9000
    assert settings.retrieval.top_k == load_settings().retrieval.top_k


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"llm.provider": "gpt5"}, "llm.provider"),
        ({"retrieval.top_k": "0"}, "retrieval.top_k"),
        ({"retrieval.nope": "1"}, "Unknown setting 'retrieval.nope'"),
    ],
)
def test_invalid_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_settings(overrides=overrides)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="FAZHI_CONFIG"):
        load_settings(tmp_path / "absent.yaml")


def test_ingest_extensions_are_some_of_what_the_loader_reads():
    """One list of formats (rag.loading.EXTENSIONS): a setting may narrow it, never name another."""
    from rag.loading import EXTENSIONS

    assert load_settings().ingest.extensions == list(EXTENSIONS)
    assert load_settings(overrides={"ingest.extensions": [".TXT", "md"]}).ingest.extensions == [".txt", ".md"]
    with pytest.raises(ConfigError, match=r"cannot read \.doc"):
        load_settings(overrides={"ingest.extensions": [".doc"]})
