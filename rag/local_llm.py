"""The local LLM: llama.cpp's OpenAI-compatible server, run inside this process by xllamacpp."""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rag.errors import LLMUnavailableError
from rag.models import LOCAL_INSTALL, prepare_local_llm, require

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

    from rag.settings import Settings

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
# One slot: every request reuses the KV cache of the previous prompt, so a fixed system prompt
# placed first is read once. Older prompts are kept in a host-memory cache of this size.
N_PARALLEL = 1
CACHE_RAM_MIB = 512
LOG_ERRORS_ONLY = 1  # llama.cpp verbosity: 0 output, 1 errors, 2 warnings, 3 info
_HEALTH_TIMEOUT_S = 2.0


class LocalLLMServer:
    """Starts llama.cpp's server on first use of base_url(), restarts it if it died, stops it at exit.

    Thread-safe. Starting takes a few seconds and blocks the whole interpreter meanwhile
    (xllamacpp loads the model holding the GIL), so long-running apps should call
    base_url() once at start-up. A random API key guards the port from other local users
    and web pages; clients get it from ``api_key``.
    """

    def __init__(self, settings: Settings, server_factory: Callable[[Any], Any] | None = None) -> None:
        self._settings = settings
        self._local = settings.llm.local
        self._factory = server_factory
        self._lock = threading.Lock()
        self._server: Any = None
        self._address: str | None = None
        self._port: int = self._local.port
        self._atexit = False
        self.api_key = f"sk-local-{secrets.token_urlsafe(16)}"
        self.model_name = self._local.model_file
        self.startup_seconds: float | None = None

    def base_url(self) -> str:
        """The OpenAI-compatible base URL (…/v1), starting or restarting the server if needed."""
        with self._lock:
            if self._server is None or not self._alive():
                self._restart()
            return f"{self._address}/v1"

    def is_running(self) -> bool:
        """True while the server answers on its port."""
        with self._lock:
            return self._server is not None and self._alive()

    def stop(self) -> None:
        """Stop the server and free its memory; the next base_url() starts it again."""
        with self._lock:
            self._drop()

    def __enter__(self) -> "LocalLLMServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _drop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            logger.info("stopping the local LLM server at %s", self._address)
            del server  # xllamacpp's Server destructor terminates llama.cpp's loop and joins its threads

    def _alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self._address}/health", timeout=_HEALTH_TIMEOUT_S):
                return True
        except urllib.error.HTTPError:
            return True  # 503 while loading: the server is there
        except (urllib.error.URLError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            return isinstance(reason, TimeoutError)  # busy, not dead
        except TimeoutError:
            return True

    def _restart(self) -> None:
        if self._server is not None:
            logger.warning("the local LLM server at %s stopped answering: restarting it", self._address)
            self._drop()
        model_path = prepare_local_llm(self._settings.models_dir, self._local.model_file)
        started = time.perf_counter()
        # A restart keeps the port, so clients built with the old base_url still work;
        # if that port has been taken meanwhile, fall back to the configured one (0: any).
        ports = [self._port] if self._port == self._local.port else [self._port, self._local.port]
        for attempt, port in enumerate(ports, start=1):
            try:
                self._server = self._create(model_path, port)
                break
            except (RuntimeError, ValueError) as err:
                if attempt == len(ports):
                    raise LLMUnavailableError(
                        f"llama.cpp could not start with {model_path} "
                        f"(n_ctx {self._local.n_ctx}, port {port}): {err}. It needs about 2 GB of free "
                        "memory and a free port (llm.local.port); or set llm.provider to extractive."
                    ) from err
        self._address = self._server.listening_address.rstrip("/")
        self._port = int(self._address.rsplit(":", 1)[1])
        self._wait_healthy(started)
        self.startup_seconds = time.perf_counter() - started
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        logger.info("local LLM server ready at %s in %.1f s", self._address, self.startup_seconds)

    def _create(self, model_path: Path, port: int) -> Any:
        xllamacpp = require("xllamacpp", LOCAL_INSTALL)
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.model_alias = {self.model_name}
        params.n_ctx = self._local.n_ctx
        params.cpuparams.n_threads = self._local.threads
        params.cpuparams_batch.n_threads = self._local.threads
        params.hostnames = [HOST]
        params.port = port
        params.api_keys = [self.api_key]
        params.n_parallel = N_PARALLEL
        params.cache_prompt = True
        params.cache_ram_mib = CACHE_RAM_MIB
        params.ui = False
        params.endpoint_slots = False  # /slots would show the last prompt to anyone on the port
        params.verbosity = LOG_ERRORS_ONLY
        factory = self._factory or xllamacpp.Server
        return factory(params)

    def _wait_healthy(self, started: float) -> None:
        deadline = started + self._local.startup_timeout_s
        health = f"{self._address}/health"
        while True:
            try:
                with urllib.request.urlopen(health, timeout=_HEALTH_TIMEOUT_S) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as err:
                if err.code != 503:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.perf_counter() > deadline:
                break
            time.sleep(0.2)
        self._drop()
        raise LLMUnavailableError(
            f"The local LLM server did not become healthy within {self._local.startup_timeout_s:.0f} s: "
            "raise llm.local.startup_timeout_s, or set llm.provider to extractive."
        )


def chat_model_for_local(server: LocalLLMServer, settings: Settings) -> ChatOpenAI:
    """A LangChain ChatOpenAI talking to the local server (started now if needed)."""
    langchain_openai = require("langchain_openai", "pip install -e .")
    return langchain_openai.ChatOpenAI(
        base_url=server.base_url(),
        api_key=server.api_key,
        model=server.model_name,
        temperature=settings.llm.temperature,
        max_tokens=settings.llm.max_tokens,
        timeout=settings.llm.timeout_s,
        max_retries=settings.llm.max_retries,
        extra_body={"cache_prompt": True},
    )
