"""The one place where real components are built from settings."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from langchain_core.embeddings import Embeddings

from rag.errors import ConfigError, ModelUnavailableError
from rag.settings import Settings


class LazyEmbeddings(Embeddings):
    """An embedder built on its first use, so that commands which embed nothing (`fazhi kb list`)
    do not wait for the model to load (about 10 s on 2 cores)."""

    def __init__(self, build: Callable[[], Embeddings]):
        self._build = build
        self._model: Embeddings | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Embeddings:
        """The embedder, built now if it was not yet (once, whichever thread asks first)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._build()
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_query(text)


def build_embeddings(settings: Settings):
    """A LangChain Embeddings over a sentence-transformers model, with e5's query/passage prompts."""
    from langchain_huggingface import HuggingFaceEmbeddings

    from rag.models import resolve_embedding_model

    e = settings.embedding
    model = resolve_embedding_model(e.model, settings.models_dir)
    try:
        return HuggingFaceEmbeddings(
            model_name=model,
            model_kwargs={"device": e.device, "model_kwargs": {"dtype": embedding_dtype(e.dtype)}},
            encode_kwargs={"normalize_embeddings": True, "batch_size": e.batch_size, "prompt": e.passage_prompt},
            query_encode_kwargs={"normalize_embeddings": True, "prompt": e.query_prompt},
        )
    except OSError as err:
        raise ModelUnavailableError(
            f"Embedding model '{e.model}' could not be loaded ({err}). Offline, use the default "
            "`e5-small-offline` (built by `fazhi models prepare`) or a local folder."
        ) from err


def embedding_dtype(setting: str):
    """The torch dtype for embedding.dtype; auto picks bfloat16 only where the CPU has it natively."""
    import torch

    if setting == "auto":
        native = torch.backends.cpu.get_cpu_capability() == "AVX512" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        setting = "bfloat16" if native else "float32"
    return getattr(torch, setting)


def build_chroma_client(settings: Settings):
    """An embedded PersistentClient under data_dir, or an HttpClient in server mode."""
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    client_settings = ChromaClientSettings(anonymized_telemetry=False)
    c = settings.chroma
    if c.mode == "server":
        try:
            return chromadb.HttpClient(host=c.host, port=c.port, settings=client_settings)
        except Exception as err:
            raise ConfigError(
                f"Chroma server at {c.host}:{c.port} does not answer ({err}): start it with "
                f"`chroma run --path DIR --host {c.host} --port {c.port}` or set chroma.mode: embedded."
            ) from err
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=client_settings)


def build_chat_model_factories(settings: Settings, local_server=None) -> dict:
    """provider → factory returning (LangChain chat model, model name); built only when used.

    Every call of the local factory shares one LocalLLMServer, so calling it again after the
    server died restarts that server rather than starting a second one.
    """

    def local():
        from rag.local_llm import LocalLLMServer, chat_model_for_local

        nonlocal local_server
        local_server = local_server or LocalLLMServer(settings)
        return chat_model_for_local(local_server, settings), settings.llm.local.model_file

    def openai():
        from langchain_openai import ChatOpenAI

        o = settings.llm.openai
        key = os.environ.get(o.api_key_env)
        if not key:
            raise ModelUnavailableError(
                f"Provider 'openai' needs an API key: set the environment variable {o.api_key_env} (its name "
                "comes from the setting llm.openai.api_key_env) and restart, or ask with another provider."
            )
        model = ChatOpenAI(
            base_url=o.base_url, model=o.model, api_key=key, temperature=settings.llm.temperature,
            max_tokens=settings.llm.max_tokens, timeout=settings.llm.timeout_s,
            max_retries=settings.llm.max_retries,
        )
        return model, o.model

    return {"local": local, "openai": openai}
