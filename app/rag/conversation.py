"""Multi-turn chat: condense a follow-up question and the turns before it into one standalone
question, so retrieval sees what "it" or "that" refers to (LangChain's history-aware retriever)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from app.llm.protocol import ChatLLM, Sampling
from app.rag.prompts import to_openai_messages

CONDENSE_SYSTEM = (
    "Rewrite the user's last question so that it can be understood without the conversation "
    "before it: replace words like 'it', 'they' or 'that' with what they refer to. "
    "Do not answer the question. Reply with the rewritten question only, on one line."
)
CONDENSE_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", CONDENSE_SYSTEM),
        MessagesPlaceholder("history"),
        ("human", "Rewrite this question so it stands alone: {question}"),
    ]
)
# Older turns rarely matter for the referent and cost prompt tokens.
MAX_HISTORY_TURNS = 6
CONDENSE_MAX_TOKENS = 64
_PREFIX = re.compile(r"^(standalone|rewritten)?\s*question\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Condensed:
    question: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def history_messages(turns: list[tuple[str, str]]) -> list[BaseMessage]:
    """(role, content) pairs of user and assistant turns as LangChain messages."""
    kinds = {"user": HumanMessage, "assistant": AIMessage}
    return [kinds[role](content) for role, content in turns[-MAX_HISTORY_TURNS:] if role in kinds]


def clean_rewrite(text: str) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    return _PREFIX.sub("", line).strip().strip('"').strip()


async def condense_question(llm: ChatLLM, turns: list[tuple[str, str]], question: str) -> Condensed:
    """The question as it stands alone; the question unchanged when there is no history."""
    history = history_messages(turns)
    if not history:
        return Condensed(question)
    messages = to_openai_messages(CONDENSE_PROMPT.format_messages(history=history, question=question))
    completion = await llm.chat(messages, **Sampling(0.0, CONDENSE_MAX_TOKENS).as_kwargs())
    rewritten = clean_rewrite(completion.text)
    # A small model sometimes answers instead, or returns nothing: keep the user's words then,
    # with the previous question in front so retrieval still sees the topic.
    if not rewritten or not rewritten.endswith("?"):
        last_user = next((c for r, c in reversed(turns) if r == "user"), "")
        rewritten = f"{last_user} {question}".strip()
    return Condensed(rewritten, completion.prompt_tokens, completion.completion_tokens)
