from __future__ import annotations

import pytest

from ingest.loaders import SkipDocument, load_document


def test_utf8_bom_and_cp949_are_decoded(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffhello wörld".encode("utf-8"))
    (tmp_path / "ko.txt").write_bytes("한국어 문서입니다.".encode("cp949"))
    assert load_document(tmp_path / "bom.txt") == "hello wörld"
    assert load_document(tmp_path / "ko.txt") == "한국어 문서입니다."


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("report.pdf", b"%PDF-1.7", "unsupported file type '.pdf'"),
        ("blank.md", b"  \n\n\t", "empty"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
        ("noext", b"text", "unsupported file type '(none)'"),
    ],
)
def test_unusable_files_are_skipped_with_a_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SkipDocument, match=reason.replace("(", r"\(").replace(")", r"\)")):
        load_document(path)
