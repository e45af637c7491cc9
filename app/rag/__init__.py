"""Retrieval-augmented answering: retrieve passages, build the prompt, pack it, ask the LLM."""
