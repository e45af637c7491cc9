from __future__ import annotations

import pytest

from ingest.documents import UploadRejected, sanitize_upload_name


@pytest.mark.parametrize(
    "name, doc",
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("C:\\Users\\me\\memo.docx", "memo.docx"),
        ("한국어 문서.md", "한국어 문서.md"),
    ],
)
def test_names_keep_only_the_base_name(name, doc):
    assert sanitize_upload_name(name) == doc


@pytest.mark.parametrize("name", [None, "", "..", ".", "../", ".env", "a\x00b.txt", "a\nb.txt", "x" * 300 + ".txt"])
def test_unusable_names_are_refused(name):
    with pytest.raises(UploadRejected):
        sanitize_upload_name(name)
