"""Measuring ragqa: retrieval and answer quality on question sets (``ragqa eval``)."""
