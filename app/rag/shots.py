"""Which exemplars go into a prompt: the bank's first k (fixed) or the k nearest to the question.

Similarity selection uses LangChain's ``SemanticSimilarityExampleSelector`` over an in-memory
vector store of the exemplar questions, embedded once, with the service's embedding model.
"""

from __future__ import annotations

from enum import StrEnum

from langchain_core.embeddings import Embeddings
from langchain_core.example_selectors import SemanticSimilarityExampleSelector
from langchain_core.vectorstores import InMemoryVectorStore

from app.rag.prompts import Exemplar, PromptMode, exemplar_bank, shot_count


class ExemplarSelection(StrEnum):
    fixed = "fixed"
    similarity = "similarity"


class ExemplarSelector:
    def __init__(
        self,
        selection: ExemplarSelection,
        embeddings: Embeddings | None = None,
        bank: tuple[Exemplar, ...] | None = None,
    ):
        self.selection = ExemplarSelection(selection)
        self.bank = bank if bank is not None else exemplar_bank()
        self._selectors: dict[int, SemanticSimilarityExampleSelector] = {}
        if self.selection is ExemplarSelection.similarity:
            if embeddings is None:
                raise ValueError("similarity selection needs an embedding model")
            # Only the question is embedded; "index" leads back to the Exemplar.
            first = SemanticSimilarityExampleSelector.from_examples(
                [{"question": e.question, "index": str(i)} for i, e in enumerate(self.bank)],
                embeddings,
                InMemoryVectorStore,
                k=len(self.bank),
                input_keys=["question"],
            )
            self._selectors[len(self.bank)] = first

    def _selector(self, k: int) -> SemanticSimilarityExampleSelector:
        # One selector per k over the one embedded store: no shared state changes per request.
        if k not in self._selectors:
            store = next(iter(self._selectors.values())).vectorstore
            self._selectors[k] = SemanticSimilarityExampleSelector(
                vectorstore=store, k=k, input_keys=["question"]
            )
        return self._selectors[k]

    def select(self, mode: PromptMode, question: str, shots: int | None = None) -> list[Exemplar]:
        """The exemplars for one question, nearest first under similarity selection.

        Embeds the question (CPU-bound): call it from a worker thread.
        """
        k = min(shot_count(mode, shots), len(self.bank))
        if k == 0:
            return []
        if self.selection is ExemplarSelection.fixed:
            return list(self.bank[:k])
        picked = self._selector(k).select_examples({"question": question})
        return [self.bank[int(row["index"])] for row in picked]
