"""Ingest on a Ray cluster: pass 2's per-document work as Ray Data ``map_batches``.

``ragqa ingest DIR --ray`` plans as ever, in this process: hashes against the manifest, under the
collection's writer lock (``ingest/run.py``). Only the new and changed documents go to Ray, as
rows of (name, path): Ray tasks read, load and split them with the local run's own
``prepare_locally``, then a pool of embedding actors, one model each, embeds the chunk texts the
collection does not hold yet. The documents come back in order to the same version builder as a
local run, which gives out the chunk ids and writes the version through ``IndexStore.write``: ids,
manifest, hashes and the atomic swap are the local run's, and a failure anywhere before the swap
(a worker killed, a cluster lost) leaves the live version as it was.

Every Ray node reads the documents at the path given, so on a cluster of several machines the
folder must be mounted at the same path on each. Ray is the optional ``ray`` extra and is
imported only here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ingest.run import (
    IngestError,
    PreparationWork,
    PreparedDocument,
    prepare_locally,
    texts_to_embed,
)

# Documents per Ray task and per embedding call: enough batches for every actor to get several
# (a small folder is shared evenly), at most this many documents (a batch's chunks are embedded in
# one call, and its results travel together).
MAX_DOCUMENTS_PER_BATCH = 16
BATCHES_PER_WORKER = 4
# A local cluster's shared-memory object store: it holds only the documents and vectors in flight
# (Ray spills to disk beyond it), and this is a small machine shared with the service.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
# How long an unreachable cluster may take to say so; ray.init itself retries for over a minute.
CONNECT_TIMEOUT_S = 5.0
# Fault injection for the tests: the embedding actor given this document exits at once, as a
# worker killed mid-ingest does. Read by the driver, so it reaches actors of any cluster.
EXIT_ON_DOCUMENT_ENV = "RAGQA_TEST_RAY_WORKER_EXIT_ON"


class RayIngestError(IngestError):
    """Ray is not installed, its cluster cannot be reached, or a worker failed mid-ingest."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no message'}"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (ray[data], not the bare ray)
    except ImportError as exc:
        raise RayIngestError(
            f"--ray needs Ray Data, which is not installed ({exc}): pip install -e '.[ray]'"
        ) from exc
    return ray


def check_reachable(address: str) -> None:
    """Fail within ``CONNECT_TIMEOUT_S`` when nothing listens at a host:port address."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray resolves those itself
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RayIngestError(f"cannot reach the Ray cluster at {address}: {reason}") from exc


def _prepare_batch(batch: dict[str, np.ndarray], work: PreparationWork) -> dict[str, np.ndarray]:
    """Ray task: read, load and split a batch of documents, exactly as a local run does."""
    documents = [(str(rel), Path(path)) for rel, path in zip(batch["rel"], batch["path"])]
    prepared = prepare_locally(dataclasses.replace(work, documents=documents))
    # A document's result travels as one pickled cell: Ray Data blocks are Arrow tables.
    return {"rel": batch["rel"], "prepared": np.array([pickle.dumps(p) for _, p in prepared], dtype=object)}


class _EmbeddingWorker:
    """Ray actor: one embedding model, embedding the new chunk texts (and their sentences) of each
    batch of documents."""

    def __init__(
        self,
        model: str,
        batch_size: int,
        backend: str,
        header: str | None,
        known_texts: frozenset[bytes],
        exit_on,
        sentence_vectors: bool = True,
    ):
        from app.core.embeddings import load_embedding_model

        self.embedder = load_embedding_model(model, batch_size, backend)
        self.header = header
        self.known_texts = known_texts
        self.exit_on = exit_on
        self.sentence_vectors = sentence_vectors

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        docs = [(str(rel), pickle.loads(cell)) for rel, cell in zip(batch["rel"], batch["prepared"])]
        if self.exit_on is not None and self.exit_on in {rel for rel, _ in docs}:
            os._exit(1)
        needed = {
            rel: texts_to_embed(rel, doc, self.header, self.known_texts, self.sentence_vectors)
            for rel, doc in docs
            if isinstance(doc, PreparedDocument)  # skipped: its reason goes back as it came
        }
        to_embed = {key: text for texts in needed.values() for key, text in texts.items()}
        vectors = dict(zip(to_embed, self.embedder.embed_documents(list(to_embed.values()))))
        for rel, doc in docs:
            if isinstance(doc, PreparedDocument):
                doc.vectors = {key: vectors[key] for key in needed[rel]}
        return {
            "rel": batch["rel"],
            "prepared": np.array([pickle.dumps(doc) for _, doc in docs], dtype=object),
        }


def documents_per_batch(documents: int, workers: int) -> int:
    """Documents per batch: BATCHES_PER_WORKER batches an actor where the folder allows."""
    return max(1, min(MAX_DOCUMENTS_PER_BATCH, documents // (workers * BATCHES_PER_WORKER)))


class RayDocumentPreparer:
    """``DocumentPreparer`` on a connected Ray cluster, with ``workers`` embedding actors of one CPU."""

    def __init__(self, ray: Any, where: str, workers: int):
        self.ray = ray
        self.where = where
        self.workers = workers

    def __call__(self, work: PreparationWork) -> Iterator[tuple[str, PreparedDocument | str]]:
        if not work.documents:
            return
        context = self.ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # chunk ids follow the folder's order
        context.enable_progress_bars = False  # ragqa ingest shows its own
        dataset = self._dataset(work)
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for rel, cell in zip(batch["rel"], batch["prepared"]):
                    yield str(rel), pickle.loads(cell)
        except Exception as exc:  # ActorDiedError, RayTaskError, a lost node: all Ray's side
            raise RayIngestError(f"Ray ingest failed on {self.where}: {_first_line(exc)}") from exc

    def _dataset(self, work: PreparationWork) -> Any:
        """Load and split as tasks, then embed on the actors."""
        data = self.ray.data
        per_batch = documents_per_batch(len(work.documents), self.workers)
        workers = min(self.workers, -(-len(work.documents) // per_batch))  # no actor without a batch
        rows = [{"rel": rel, "path": str(path)} for rel, path in work.documents]
        loaded = data.from_items(rows).map_batches(
            _prepare_batch,
            fn_kwargs={"work": dataclasses.replace(work, documents=[], known_texts=frozenset())},
            batch_size=per_batch,
            batch_format="numpy",
            # No CPU reserved: the actors may hold every CPU of a small cluster, and tasks that
            # waited for one would never run.
            num_cpus=0,
            compute=data.TaskPoolStrategy(size=workers),
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            return loaded.map_batches(
                _EmbeddingWorker,
                fn_constructor_kwargs={
                    "model": work.embedding_model,
                    "batch_size": work.embedding_batch_size,
                    "backend": work.embedding_backend,
                    "header": work.splitter.header,
                    "known_texts": frozenset(work.known_texts),  # 16 bytes a chunk
                    "exit_on": os.environ.get(EXIT_ON_DOCUMENT_ENV),
                    "sentence_vectors": work.sentence_vectors,
                },
                batch_size=per_batch,
                batch_format="numpy",
                num_cpus=1,
                compute=data.ActorPoolStrategy(size=workers),
                # Ray Data restarts a dead actor and retries its batch forever by default: a
                # document that kills its worker would never end the run. Failing is safe, as
                # nothing is written. (Ray's documented switch; deprecated for 2.64, no successor.)
                max_restarts=0,
            )


@contextmanager
def ray_preparer(address: str | None = None, workers: int | None = None) -> Iterator[RayDocumentPreparer]:
    """Connect to the Ray cluster at ``address`` (None: start a local one, stopped on exit) and
    yield a preparer using ``workers`` embedding actors (None: one per CPU of the cluster)."""
    ray = _import_ray()
    if address:
        check_reachable(address)
        where = f"the Ray cluster at {address}"
        options: dict[str, Any] = {"address": address}
    else:
        where = "a local Ray cluster"
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a self-hosted tool reports nothing
        options = {
            "address": "local",  # a new cluster, never one that happens to run here
            "include_dashboard": False,
            "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
        }
    try:
        ray.init(**options, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:
        raise RayIngestError(f"cannot connect to {where}: {_first_line(exc)}") from exc
    try:
        # Its notices would break the progress bars, and a failed run is one line (RayIngestError);
        # the traceback stays in the session's ray-data log.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        yield RayDocumentPreparer(ray, where, max(1, workers or cpus))
    finally:
        ray.shutdown()
