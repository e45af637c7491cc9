"""The prompt modes and answer strategies, in a module of their own: the ``ragqa`` commands
take them as options without importing the prompts (and LangChain)."""

from __future__ import annotations

from enum import StrEnum


class PromptMode(StrEnum):
    zero_shot = "zero_shot"
    one_shot = "one_shot"
    few_shot = "few_shot"


class Strategy(StrEnum):
    direct = "direct"  # answer straight away
    cot = "cot"  # Kojima et al.: reason "step by step", then extract the answer in a second call
    step_back = "step_back"  # Zheng et al.: ask a more general question first, retrieve for both
