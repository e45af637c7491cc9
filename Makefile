# The two commands of README.md: `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test test-fast lint

setup:
	./scripts/setup.sh

# Set up, ingest the sample collection, and serve it with the embedded LLM.
run: setup
	$(BIN)/ragqa ingest samples/ragqa-docs --collection default
	$(BIN)/ragqa serve --host $(HOST) --port $(PORT)

# Set up, then run the whole suite, slow tests included (as CI does).
test: setup
	$(BIN)/python -m pytest

# Only the tests that need neither the embedding model nor the LLM.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"
