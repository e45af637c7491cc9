"""Failure 3 (and the hard link of "also seen"): hostile documents are skipped with a reason,
in bounded memory. Each bomb is loaded in a child process under an address-space limit, so
today's unbounded parse fails the test (MemoryError) instead of taking the machine's memory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.ingest.docgen import make_docx

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1536 * 1024 * 1024  # address space, not RSS: the interpreter and lxml need ~300 MB
RSS_BOUND_MB = 400


def docx_bomb(path: Path, paragraphs_mb: int = 40) -> None:
    """A valid .docx whose document.xml inflates to ``paragraphs_mb`` MB of empty paragraphs,
    under the unpacked-size cap (a few hundred KB on disk)."""
    source = zipfile.ZipFile(io.BytesIO(make_docx(["hello"])))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            if info.filename != "word/document.xml":
                out.writestr(info, source.read(info))
                continue
            xml = source.read(info).decode()
            head, tail = xml.split("<w:body>", 1)
            with out.open("word/document.xml", "w") as part:
                part.write((head + "<w:body>").encode())
                block = b"<w:p/>" * (1 << 17)
                for _ in range(paragraphs_mb * (1 << 20) // len(block)):
                    part.write(block)
                part.write(tail.encode())


def load_in_child(path: Path) -> tuple[str, int]:
    """(outcome, peak RSS in MB) of load_bytes on ``path`` in a memory-limited child."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))
        from pathlib import Path
        from ingest.loaders import SkipDocument, load_bytes
        path = Path(sys.argv[1])
        try:
            load_bytes(path.name, path.read_bytes())
            outcome = "loaded"
        except SkipDocument as exc:
            outcome = "skipped: " + str(exc)
        except BaseException as exc:
            outcome = "crashed: " + type(exc).__name__
        print(outcome)
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
        hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        print(int(hwm.split()[1]) // 1024)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) < 2:
        return f"crashed: rc={done.returncode} {done.stderr[-500:]}", -1
    return lines[-2], int(lines[-1])


def test_docx_of_empty_paragraphs_is_skipped_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.docx"
    docx_bomb(path)
    assert path.stat().st_size < 1024 * 1024
    outcome, rss_mb = load_in_child(path)
    assert outcome.startswith("skipped: "), outcome
    assert "elements" in outcome
    assert rss_mb < RSS_BOUND_MB, f"peak RSS {rss_mb} MB"


def test_html_of_many_tags_is_skipped_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.html"
    path.write_bytes(b"<html><body>" + b"<i>" * 1_200_000 + b"</body></html>")
    outcome, rss_mb = load_in_child(path)
    assert outcome.startswith("skipped: "), outcome
    assert rss_mb < RSS_BOUND_MB, f"peak RSS {rss_mb} MB"


def test_a_hard_link_is_not_ingested(tmp_path):
    from ingest.run import discover

    outside = tmp_path / "outside" / "secret.txt"
    outside.parent.mkdir()
    outside.write_text("a secret outside the folder")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "plain.txt").write_text("an ordinary document")
    try:
        os.link(outside, folder / "linked.txt")
    except OSError as exc:
        pytest.skip(f"no hard links here: {exc}")
    files, passed_over = discover(folder)
    assert [rel for rel, _ in files] == ["plain.txt"]
    assert {"path": "linked.txt", "reason": "hard link (may point outside the ingested folder)"} in passed_over
