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


# The history must fit the context window beside the instructions and the question: at most
# this many characters in all (~2,000 tokens of a 4,096 window at the worst ~3 chars/token),
# newest turns first, and no one turn longer than MAX_TURN_CHARS (its start and end are kept).
MAX_HISTORY_CHARS = 6000
MAX_TURN_CHARS = 2000


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = max(1, (limit - 5) // 2)
    return f"{text[:half]} [...] {text[-half:]}"


def history_messages(turns: list[tuple[str, str]]) -> list[BaseMessage]:
    """(role, content) pairs of user and assistant turns as LangChain messages, the newest ones
    that fit MAX_HISTORY_CHARS (an over-long turn shortened), so the condense prompt always fits."""
    kinds = {"user": HumanMessage, "assistant": AIMessage}
    kept: list[BaseMessage] = []
    budget = MAX_HISTORY_CHARS
    for role, content in reversed(turns[-MAX_HISTORY_TURNS:]):
        if role not in kinds:
            continue
        text = _shorten(content, min(MAX_TURN_CHARS, budget))
        if budget < 50:
            break
        kept.append(kinds[role](text))
        budget -= len(text)
    return kept[::-1]


def clean_rewrite(text: str) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    return _PREFIX.sub("", line).strip().strip('"').strip()


async def condense_question(llm: ChatLLM, turns: list[tuple[str, str]], question: str) -> Condensed:
    """The question as it stands alone; the question unchanged when there is no history."""
    history = history_messages(turns)
    if not history:
        return Condensed(question)
    messages = to_openai_messages(CONDENSE_PROMPT.format_messages(history=history, question=question))
    completion = await llm.chat(messages, Sampling(0.0, CONDENSE_MAX_TOKENS))
    rewritten = clean_rewrite(completion.text)
    # A small model sometimes answers instead, or returns nothing: keep the user's words then,
    # with the previous question in front so retrieval still sees the topic.
    if not rewritten or not rewritten.endswith("?"):
        last_user = next((c for r, c in reversed(turns) if r == "user"), "")
        rewritten = f"{last_user} {question}".strip()
    return Condensed(rewritten, completion.prompt_tokens, completion.completion_tokens)
