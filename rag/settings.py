"""Settings: one YAML file (config/default.yaml), validated once with pydantic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from rag.errors import ConfigError
from rag.loading import EXTENSIONS
from rag.providers import check_provider

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.yaml"
CONFIG_ENV = "FAZHI_CONFIG"
OVERRIDE_PREFIX = "FAZHI__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingSettings(_Section):
    model: str = "e5-small-offline"
    query_prompt: str = "query: "
    passage_prompt: str = "passage: "
    batch_size: int = Field(32, ge=1)
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"


class ChromaSettings(_Section):
    mode: Literal["embedded", "server"] = "embedded"
    collection: str = "fazhi_reports"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


def _readable_extensions(extensions: list[str]) -> list[str]:
    """The extensions, lower-cased, each one the loader reads (the one list is rag.loading.EXTENSIONS)."""
    extensions = [e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions]
    unknown = [e for e in extensions if e not in EXTENSIONS]
    if unknown:
        raise ValueError(f"cannot read {', '.join(unknown)}: ingest.extensions takes some of {', '.join(EXTENSIONS)}")
    return extensions


class IngestSettings(_Section):
    extensions: Annotated[list[str], AfterValidator(_readable_extensions)] = Field(default_factory=lambda: list(EXTENSIONS))
    max_file_mb: float = Field(20, gt=0)
    chunk_tokens: int = Field(220, ge=32)
    overlap_tokens: int = Field(40, ge=0)
    max_chunks_per_file: int = Field(2000, ge=1)
    min_free_mb: float = Field(128, ge=0)


class RetrievalSettings(_Section):
    top_k: int = Field(6, ge=1)
    dense_k: int = Field(20, ge=1)
    keyword_k: int = Field(20, ge=1)
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0)
    keyword_weight: float = Field(1.0, ge=0)
    sentence_weight: float = Field(0.03, ge=0)
    per_district_k: int = Field(3, ge=1)


class LocalLLMSettings(_Section):
    model_file: str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    n_ctx: int = Field(4096, ge=512)
    threads: int = Field(2, ge=1)
    port: int = Field(0, ge=0, le=65535)
    startup_timeout_s: float = Field(180, gt=0)


class OpenAISettings(_Section):
    base_url: str = "https://api.deepseek.com/v1"
    model: str = "deepseek-chat"
    api_key_env: str = "OPENAI_API_KEY"


class LLMSettings(_Section):
    provider: Annotated[str, AfterValidator(check_provider)] = "local"
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(384, ge=16)
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(1, ge=0, le=5)
    context_tokens: int = Field(260, ge=50)
    local: LocalLLMSettings = LocalLLMSettings()
    openai: OpenAISettings = OpenAISettings()


class AnswerSettings(_Section):
    max_question_chars: int = Field(500, ge=10)
    extractive_sentences: int = Field(3, ge=1)
    extractive_context_tokens: int = Field(600, ge=50)


class IndicatorSettings(_Section):
    aliases: Path = Path("config/indicator_aliases.yaml")  # metric key: [wording variants…]


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    api_key_env: str = "FAZHI_API_KEY"
    max_upload_mb: float = Field(20, gt=0)
    requests_per_minute: int = Field(120, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _no_ui_public(cls, raw: Any) -> Any:
        """A removed setting gets its reason rather than pydantic's "Extra inputs are not permitted"."""
        if isinstance(raw, dict) and "ui_public" in raw:
            raise ValueError(
                "server.ui_public was removed: with the key set (the variable named by server.api_key_env) "
                "the chat UI always asks for it as its password, and without a key everything is open. "
                "Delete the line."
            )
        return raw


class Settings(_Section):
    data_dir: Path = Path("data")
    seeds_dir: Path = Path("seeds")
    embedding: EmbeddingSettings = EmbeddingSettings()
    chroma: ChromaSettings = ChromaSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LLMSettings = LLMSettings()
    answer: AnswerSettings = AnswerSettings()
    server: ServerSettings = ServerSettings()
    indicators: IndicatorSettings = IndicatorSettings()

    def model_post_init(self, __context: Any) -> None:
        for section, name in ((self, "data_dir"), (self, "seeds_dir"), (self.indicators, "aliases")):
            path = getattr(section, name)
            if not path.is_absolute():
                object.__setattr__(section, name, PROJECT_ROOT / path)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    def with_overrides(self, overrides: dict[str, Any]) -> "Settings":
        """A copy with dotted keys replaced, e.g. {"llm.provider": "extractive"}."""
        raw = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            _set_dotted(raw, dotted, value)
        return _validate(raw, "overrides")


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise ConfigError(f"Unknown setting '{dotted}': see config/default.yaml for the keys.")
        node = node[key]
    if keys[-1] not in node:
        raise ConfigError(f"Unknown setting '{dotted}': see config/default.yaml for the keys.")
    node[keys[-1]] = yaml.safe_load(value) if isinstance(value, str) else value


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{"llm.provider": "extractive"} from ("llm.provider=extractive", …), as given to --set."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"'{pair}' is not KEY=VALUE: write e.g. --set llm.provider=extractive.")
        overrides[key.strip()] = value
    return overrides


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(raw: dict, origin: str) -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"Invalid settings in {origin}: {problems}") from err


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Read settings from PATH, $FAZHI_CONFIG or config/default.yaml, then apply overrides.

    Environment variables FAZHI__SECTION__KEY=value override single keys.
    """
    config_path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"Settings file {config_path} not found: set {CONFIG_ENV} or create it.") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"Settings file {config_path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"Settings file {config_path} must hold a mapping of settings.")
    raw = _deep_merge(Settings().model_dump(mode="json"), raw)
    env_overrides = {
        name[len(OVERRIDE_PREFIX):].lower().replace("__", "."): value
        for name, value in os.environ.items()
        if name.startswith(OVERRIDE_PREFIX)
    }
    for dotted, value in {**env_overrides, **(overrides or {})}.items():
        _set_dotted(raw, dotted, value)
    return _validate(raw, str(config_path))
