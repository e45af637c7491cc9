"""Metric functions: SQuAD answer scores and ranked-retrieval scores. Pure functions, no I/O."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, punctuation and articles removed, whitespace collapsed.

    Unicode punctuation (category P*, e.g. curly quotes, en dashes) goes too, and the text is
    NFKC-normalised first, so full-width and composed forms compare equal.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(
        ch for ch in text if ch not in _PUNCTUATION and not unicodedata.category(ch).startswith("P")
    )
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        # SQuAD v2.0: two empty answers agree; one empty answer scores nothing.
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_golds(metric, prediction: str, golds: Sequence[str]) -> float:
    """The best score against any of the gold answers (0 when there are none)."""
    return max((metric(prediction, g) for g in golds), default=0.0)


_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def contains_gold(prediction: str, golds: Sequence[str]) -> bool:
    """Whether a normalised gold answer appears in the normalised prediction, on token bounds.

    A Korean gold needs a word start only: particles and endings attach to the word that ends
    it (빨간색 in 빨간색입니다).
    """
    padded = f" {normalize_answer(prediction)} "
    for gold in golds:
        g = normalize_answer(gold)
        if not g:
            continue
        if f" {g} " in padded or (_HANGUL.search(g[-1]) and f" {g}" in padded):
            return True
    return False


# ---- retrieval -------------------------------------------------------------------------------


def unique_in_order(items: Iterable[str]) -> list[str]:
    """Documents in rank order, each once at its best rank (several chunks of one doc collapse)."""
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def first_relevant_rank(ranked_docs: Sequence[str], relevant: Iterable[str], k: int) -> int | None:
    """1-based rank of the first passage from a relevant document in the top k, else None.

    Ranks count passages (chunks), as the model sees them: hit@5 means a relevant document is
    among the 5 passages a top_k=5 answer is given.
    """
    relevant = set(relevant)
    return next((r for r, doc in enumerate(ranked_docs[:k], start=1) if doc in relevant), None)


def hit_at_k(ranked_docs: Sequence[str], relevant: Iterable[str], k: int) -> float:
    return float(first_relevant_rank(ranked_docs, relevant, k) is not None)


def reciprocal_rank(ranked_docs: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """1/rank of the first passage from a relevant document in the top k, else 0 (MRR@k)."""
    rank = first_relevant_rank(ranked_docs, relevant, k)
    return 1.0 / rank if rank else 0.0


def ndcg_at_k(
    ranked_docs: Sequence[str],
    relevance: Mapping[str, float],
    k: int = 10,
    scores: Sequence[float] | None = None,
) -> float:
    """nDCG@k with gain ``rel`` and discount 1/log2(rank + 1), over deduplicated documents.

    A document retrieved several times counts once, at its first (best) rank. With ``scores``,
    documents whose scores tie share their positions: each gets the mean discount of the
    positions the tied group spans (McSherry and Najork's tie-aware DCG), so the order in which
    an engine happens to list tied documents does not change the score.
    """
    if scores is not None and len(scores) != len(ranked_docs):
        raise ValueError("scores and ranked_docs differ in length")
    first_score: dict[str, float] = {}
    docs: list[str] = []
    for i, doc in enumerate(ranked_docs):
        if doc not in first_score:
            first_score[doc] = scores[i] if scores is not None else -float(i)
            docs.append(doc)
    discounts = [1.0 / math.log2(rank + 1) for rank in range(1, len(docs) + 1)]
    dcg, start = 0.0, 0
    while start < min(k, len(docs)):
        end = start
        while end + 1 < len(docs) and first_score[docs[end + 1]] == first_score[docs[start]]:
            end += 1
        group = range(start, end + 1)
        # Only the part of a tied group inside the top k counts, spread over the whole group.
        inside = [discounts[i] for i in group if i < k]
        gain = sum(relevance.get(docs[i], 0.0) for i in group) / len(group)
        dcg += gain * sum(inside)
        start = end + 1
    ideal_gains = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal_gains, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def passage_hit(passages: Iterable[tuple[str, str]], gold_doc: str, golds: Sequence[str]) -> bool:
    """Whether any (doc, text) passage is from the gold document and contains a gold answer."""
    return any(doc == gold_doc and any(g and g in text for g in golds) for doc, text in passages)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
