"""A picture of a collection: its chunk embeddings projected to 2-D with t-SNE, coloured by
document, near-duplicates and outliers marked, and the chunks retrieved for a question ringed.

Projections are cached per collection version (a new ingest makes a new version, so a stale
map is never served); above ``max_points`` chunks a fixed random sample is projected and the
legend says so.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from app.core.store import CollectionIndex
from ingest import curation

SAMPLE_SEED = 0


@dataclass
class Projection:
    collection: str
    version: str
    total_chunks: int
    chunk_ids: np.ndarray  # the projected chunks (all, or the sample)
    docs: list[str]
    xy: np.ndarray  # (n, 2)
    near_duplicate: np.ndarray  # bool (n,)
    outlier: np.ndarray  # bool (n,)
    seconds: float = 0.0
    row_of: dict[int, int] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return len(self.chunk_ids) < self.total_chunks

    def points(self) -> list[dict]:
        return [
            {
                "id": int(cid),
                "doc": doc,
                "x": float(x),
                "y": float(y),
                "near_duplicate": bool(d),
                "outlier": bool(o),
            }
            for cid, doc, (x, y), d, o in zip(
                self.chunk_ids, self.docs, self.xy, self.near_duplicate, self.outlier
            )
        ]


def project(index: CollectionIndex, max_points: int) -> Projection:
    """t-SNE of the collection's vectors (or a sample of them). CPU-bound: seconds per thousand."""
    import time

    from sklearn.manifold import TSNE

    started = time.perf_counter()
    all_ids = np.array(sorted(index.chunks), dtype=np.int64)
    ids = all_ids
    if len(all_ids) > max_points:
        rng = np.random.default_rng(SAMPLE_SEED)
        ids = np.sort(rng.choice(all_ids, size=max_points, replace=False))
    vectors = index.vectors_for([int(i) for i in ids])
    n = len(ids)
    if n >= 4:
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
        xy = TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca",
            metric="cosine",
            random_state=SAMPLE_SEED,
            max_iter=1000,
        ).fit_transform(vectors)
    else:  # too few points for t-SNE: a line is an honest picture of 0-3 chunks
        xy = np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
    docs = [index.chunks[int(i)].doc for i in ids]
    # Flagged as `ragqa ingest` flags them (ingest/curation.py), among the projected chunks.
    dup, out = curation.flags(vectors, docs)
    return Projection(
        index.name,
        index.version,
        len(all_ids),
        ids,
        docs,
        np.asarray(xy),
        dup,
        out,
        seconds=round(time.perf_counter() - started, 2),
        row_of={int(c): r for r, c in enumerate(ids)},
    )


def render_png(
    projection: Projection,
    highlighted: list[int] | None = None,
    question: str | None = None,
    width_px: int = 1200,
    height_px: int = 900,
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig, ax = plt.subplots(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    try:
        doc_names = sorted(set(projection.docs))
        cmap = plt.get_cmap("tab20")
        colour_of = {d: cmap(i % 20) for i, d in enumerate(doc_names)}
        xy = projection.xy
        colours = [colour_of[d] for d in projection.docs]
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=18, alpha=0.8, linewidths=0)
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=colour_of[d], label=d)
            for d in doc_names[:20]
        ]
        if len(doc_names) > 20:
            handles.append(plt.Line2D([], [], ls="", label=f"+{len(doc_names) - 20} more documents"))
        dup = projection.near_duplicate
        if dup.any():
            ax.scatter(xy[dup, 0], xy[dup, 1], marker="x", c="black", s=40, linewidths=1)
        handles.append(
            plt.Line2D(
                [],
                [],
                marker="x",
                ls="",
                color="black",
                label=f"near-duplicate (cos ≥ {curation.NEAR_DUPLICATE_COSINE}): {int(dup.sum())}",
            )
        )
        out = projection.outlier
        if out.any():
            ax.scatter(xy[out, 0], xy[out, 1], marker="o", facecolors="none", edgecolors="red", s=90, linewidths=1.2)
        handles.append(
            plt.Line2D([], [], marker="o", ls="", mfc="none", mec="red", label=f"outlier: {int(out.sum())}")
        )
        if highlighted is not None:
            shown = [(rank, projection.row_of[c]) for rank, c in enumerate(highlighted, 1) if c in projection.row_of]
            for rank, row in shown:
                ax.scatter(xy[row, 0], xy[row, 1], marker="*", s=380, color=colours[row], edgecolors="black", linewidths=1.2, zorder=5)
                ax.annotate(
                    str(rank),
                    (xy[row, 0], xy[row, 1]),
                    xytext=(6, 6),
                    textcoords="offset points",
                    fontsize=11,
                    weight="bold",
                    zorder=6,
                )
            missing = len(highlighted) - len(shown)
            label = f"retrieved for the question: {len(shown)}"
            if missing:
                label += f" ({missing} not in the sample)"
            handles.append(plt.Line2D([], [], marker="*", ls="", mfc="white", mec="black", ms=14, label=label))
        if projection.sampled:
            handles.append(
                plt.Line2D(
                    [],
                    [],
                    ls="",
                    label=(f"sampled: {len(projection.chunk_ids)} of {projection.total_chunks} chunks"),
                )
            )
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        title = f"{projection.collection} ({projection.version}): t-SNE of {len(projection.chunk_ids)} chunk embeddings"
        if question:
            title += f"\nquestion: {question[:100]}"
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()
    finally:
        plt.close(fig)


class MapCache:
    """Projections by (collection, version); a few rendered PNGs by question too."""

    def __init__(self, max_points: int, max_pngs: int = 32):
        self.max_points = max_points
        self._projections: dict[str, Projection] = {}
        self._pngs: OrderedDict[tuple, bytes] = OrderedDict()
        self._max_pngs = max_pngs
        self._lock = threading.Lock()  # one t-SNE at a time: it uses every core

    def projection(self, index: CollectionIndex) -> tuple[Projection, bool]:
        cached = self._projections.get(index.name)
        if cached is not None and cached.version == index.version:
            return cached, True
        with self._lock:
            cached = self._projections.get(index.name)
            if cached is not None and cached.version == index.version:
                return cached, True
            fresh = project(index, self.max_points)
            self._projections[index.name] = fresh
            return fresh, False

    def png(self, index: CollectionIndex, highlighted: list[int] | None, question: str | None) -> tuple[bytes, bool]:
        key = (index.name, index.version, tuple(highlighted or ()), question)
        if key in self._pngs:
            self._pngs.move_to_end(key)
            return self._pngs[key], True
        projection, _ = self.projection(index)
        image = render_png(projection, highlighted, question)
        self._pngs[key] = image
        while len(self._pngs) > self._max_pngs:
            self._pngs.popitem(last=False)
        return image, False
