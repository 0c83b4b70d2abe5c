"""Helper processes for the bench and the tests: free ports, servers started and stopped, data folders."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from rag.settings import load_settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def console_script(name: str) -> str:
    """The path of an installed command (chroma, fazhi), preferring this interpreter's environment."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name) or name


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running(args: list[str], url: str, timeout_s: float, log: Path | None = None,
            env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Start a process (output to `log`), enter once `url` answers any HTTP status, stop it on exit.

    RuntimeError, with the end of the log, when the process exits or `url` stays silent.
    """
    with open(log or "/dev/null", "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log else ""
                state = f"exited with {process.returncode}" if process.poll() is not None else "did not answer"
                raise RuntimeError(f"{Path(args[0]).name} {state} ({url}, {timeout_s:.0f} s):\n{tail}")
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield process
    finally:
        _stop(process)


@contextmanager
def chroma_server(path: Path, port: int, log: Path | None = None) -> Iterator[subprocess.Popen]:
    """`chroma run --path PATH` on 127.0.0.1:port, entered once its heartbeat answers."""
    args = [console_script("chroma"), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    with running(args, f"http://127.0.0.1:{port}/api/v2/heartbeat", 60, log) as process:
        yield process


def data_dir_sharing_models(folder: Path, models_dir: Path | None = None) -> Path:
    """folder/data, a fresh data folder whose models/ is the one `fazhi models prepare` filled."""
    data = folder / "data"
    data.mkdir(parents=True)
    shared = models_dir or load_settings().models_dir
    shared.mkdir(parents=True, exist_ok=True)
    (data / "models").symlink_to(shared.resolve(), target_is_directory=True)
    return data
