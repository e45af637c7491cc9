"""A sentence-transformers model on ONNX Runtime: exported once from its local folder, cached, and
run without torch.

The export traces the whole SentenceTransformer (transformer, pooling, normalisation) into one
graph with torch's TorchScript-based exporter, and checks it before keeping it: on probe texts
the fast tokenizer must give sentence-transformers' own token ids, and the graph its vectors
within ``EXPORT_TOLERANCE``. ``onnx-int8`` quantizes that graph's weights to int8 (ONNX
Runtime's dynamic quantization, per channel). Nothing is downloaded: a model that is not a
local folder (the bundled MiniLM is one) cannot be exported here.

The cache folder holds one subfolder per model folder, export format and backend, keyed by the
model folder's files (names, sizes, modification times); a new model version gets a new export.
A folder is written under a temporary name and renamed into place, so a reader never sees a
half-written export, and an exclusive lock keeps two processes (``--workers 2``) from exporting
the same model at once. An unwritable cache folder means an export per process, in a temporary
folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ONNX_BACKENDS = ("onnx", "onnx-int8")
# Bump when the exported graph or its files change: older exports are then left unused.
EXPORT_FORMAT = "ragqa-onnx/1"
# An export whose vectors differ more than this from torch's (any component) is refused.
EXPORT_TOLERANCE = 1e-4
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PROBES = (
    "What is ragqa?",
    "Passages go into the prompt in rank order while they fit the context window.",
    "서울은 대한민국의 수도이다.",
    "x",
    "A long text " * 120,  # past max_seq_length: truncation must match
)


class OnnxExportError(RuntimeError):
    """The model cannot run on ONNX Runtime here (not a local folder, or its export differs)."""


def _model_key(folder: Path, backend: str) -> str:
    digest = hashlib.sha256(f"{EXPORT_FORMAT}\n{backend}\n{folder.resolve()}\n".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return f"{folder.name}-{backend}-{digest.hexdigest()[:16]}"


@contextmanager
def _locked(lock_path: Path):
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def exported_model(folder: Path, backend: str, cache_dir: Path) -> Path:
    """The folder of ``folder``'s export for ``backend`` (``model.onnx``, ``tokenizer.json``,
    ``export.json``), exported now if the cache does not hold it."""
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"not an ONNX backend: {backend!r} (one of {', '.join(ONNX_BACKENDS)})")
    if not folder.is_dir():
        raise OnnxExportError(f"{folder} is not a local model folder: ONNX exports only from one")
    key = _model_key(folder, backend)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        target = cache_dir / key
        if (target / "export.json").exists():
            return target
        with _locked(cache_dir / f"{key}.lock"):
            if not (target / "export.json").exists():  # another process may have exported it meanwhile
                staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
                try:
                    _export(folder, backend, staging)
                    staging.rename(target)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
        return target
    except OSError as exc:
        scratch = Path(tempfile.mkdtemp(prefix=f"ragqa-onnx-{key}-"))
        log.warning(
            "ONNX cache %s is not writable (%s); exporting to %s for this process only",
            cache_dir,
            exc,
            scratch,
        )
        _export(folder, backend, scratch)
        return scratch


def _export(folder: Path, backend: str, out: Path) -> None:
    """Trace the SentenceTransformer in ``folder`` to ``out/model.onnx`` (int8 weights for
    onnx-int8), save its tokenizer, and check both against sentence-transformers."""
    import torch
    from sentence_transformers import SentenceTransformer

    log.info("exporting %s to ONNX (%s) in %s", folder, backend, out)
    model = SentenceTransformer(str(folder), device="cpu")
    model.eval()
    tokenizer = getattr(model, "tokenizer", None)
    backend_tokenizer = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is None:
        raise OnnxExportError(f"{folder}: no fast tokenizer, which the ONNX backend needs")
    max_seq_length = int(model.max_seq_length)

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            features = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            }
            return self.inner(features)["sentence_embedding"]

    # Two texts of different lengths: the traced graph takes the padded (masked) path.
    example = model.preprocess(["a sentence to trace the graph with", "short"])
    if set(_INPUTS) - set(example):
        raise OnnxExportError(f"{folder}: the model takes {sorted(example)}, not {list(_INPUTS)}")
    fp32 = out / "model-fp32.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on shapes it records as constants: the probes below check the graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceEmbedding(model),
            tuple(example[name] for name in _INPUTS),
            str(fp32),
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic axes as given
            input_names=list(_INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={
                **{name: {0: "batch", 1: "tokens"} for name in _INPUTS},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
        )
    graph = out / "model.onnx"
    if backend == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32), str(graph), weight_type=QuantType.QInt8, per_channel=True)
        fp32.unlink()
    else:
        fp32.rename(graph)
    backend_tokenizer.save(str(out / "tokenizer.json"))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    info = {
        "format": EXPORT_FORMAT,
        "backend": backend,
        "source": str(folder.resolve()),
        "max_seq_length": max_seq_length,
        "pad_id": int(pad_id),
        "pad_token": str(tokenizer.pad_token or "[PAD]"),
        "dim": int(
            (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
        ),
    }
    (out / "export.json").write_text(json.dumps(info, indent=1), "utf-8")
    encoder = OnnxSentenceEncoder(out, threads=1)
    for text in _PROBES:
        expected = model.preprocess([text])["input_ids"][0].tolist()
        if encoder.token_ids(text) != expected:
            raise OnnxExportError(
                f"{folder}: the fast tokenizer does not reproduce sentence-transformers' ids"
            )
    if backend == "onnx":
        reference = model.encode(list(_PROBES), normalize_embeddings=True)
        difference = float(np.abs(encoder.encode(list(_PROBES)) - reference).max())
        if difference > EXPORT_TOLERANCE:
            raise OnnxExportError(
                f"{folder}: the ONNX graph's vectors differ from torch's by {difference:.2g}"
            )


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class OnnxSentenceEncoder:
    """An exported model on ONNX Runtime: tokenizer, graph, then unit-length vectors."""

    def __init__(self, export_dir: Path, threads: int = 0):
        """``threads``: ONNX Runtime's intra-op threads (0: its default, every core); with a
        limit, its threads do not spin-wait for work (they would burn the cores requests need)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        info = json.loads((export_dir / "export.json").read_text("utf-8"))
        if info.get("format") != EXPORT_FORMAT:
            raise OnnxExportError(
                f"{export_dir}: export format {info.get('format')!r}, not {EXPORT_FORMAT!r}"
            )
        self.backend: str = info["backend"]
        self.dim: int = info["dim"]
        self.max_seq_length: int = info["max_seq_length"]
        self._tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_seq_length)
        self._tokenizer.enable_padding(pad_id=info["pad_id"], pad_token=info["pad_token"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(export_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        # At most one inference per core at a time: each run has buffers of its own, and more
        # at once on the same cores is not faster.
        self._slots = threading.BoundedSemaphore(_usable_cores())

    def token_ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text).ids)

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        feed: dict[str, Any] = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        with self._slots:
            return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length vectors, one row per text. Batches hold texts of similar length (less
        padding), as sentence-transformers' encode does; rows come back in the given order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            vectors[chosen] = self._run([texts[i] for i in chosen])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
