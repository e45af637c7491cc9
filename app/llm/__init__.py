"""The LLM behind ragqa: an OpenAI-compatible chat completions server, reached over HTTP."""
