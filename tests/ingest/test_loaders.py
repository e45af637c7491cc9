from __future__ import annotations

import re
import zipfile

import pytest

from ingest.loaders import LoadedText, SkipDocument, load_bytes, load_document
from tests.ingest.docgen import make_docx, make_pdf


def test_utf8_bom_and_cp949_are_decoded(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffhello wörld".encode("utf-8"))
    (tmp_path / "ko.txt").write_bytes("한국어 문서입니다.".encode("cp949"))
    assert load_document(tmp_path / "bom.txt").text == "hello wörld"
    assert load_document(tmp_path / "ko.txt").text == "한국어 문서입니다."


def test_utf16_with_bom_and_euc_kr_html_declaration_are_decoded():
    assert load_bytes("a.txt", "안녕 utf-16".encode("utf-16")).text == "안녕 utf-16"
    html = '<html><head><meta charset="euc-kr"></head><body><p>서울은 수도이다</p></body></html>'
    assert load_bytes("a.html", html.encode("euc-kr")).text == "서울은 수도이다"


def test_fallback_guess_decodes_what_utf8_and_cp949_cannot():
    # Shift-JIS kana bytes are invalid in both UTF-8 and CP949.
    text = "これは日本語のテキストです。ファイルの文字コードを推測します。" * 3
    assert load_bytes("ja.txt", text.encode("shift_jis")).text == text


def test_html_keeps_main_text_without_scripts_styles_or_navigation():
    html = b"""<html><head><title>T</title><style>.x{color:red}</style>
    <script>var secret = "SCRIPTTEXT";</script></head><body>
    <nav><a href="/">Home</a> | <a href="/about">NAVTEXT</a></nav>
    <header>HEADERTEXT</header>
    <main><h1>Rockets</h1><p>The alpha rocket   flies
    high.</p><noscript>NOSCRIPTTEXT</noscript></main>
    <footer>FOOTERTEXT</footer></body></html>"""
    text = load_bytes("page.htm", html).text
    assert "Rockets" in text and "The alpha rocket flies\nhigh." in text
    for noise in ("SCRIPTTEXT", "NAVTEXT", "HEADERTEXT", "FOOTERTEXT", "NOSCRIPTTEXT", "color:red"):
        assert noise not in text


def test_pdf_pages_are_kept():
    loaded = load_bytes("r.pdf", make_pdf(["First page about apples.", "Second page about pears."]))
    assert isinstance(loaded, LoadedText) and len(loaded.page_starts) == 2
    second = loaded.text.index("Second page")
    assert loaded.page_at(0) == 1 and loaded.page_at(second) == 2
    assert loaded.page_at(second - 1) == 1


def test_docx_paragraphs_and_tables_in_order():
    data = make_docx(["Annual report", "Revenue grew.", "Costs fell."], [["year", "revenue"], ["2025", "12"]])
    assert load_bytes("r.docx", data).text == (
        "Annual report\n\nRevenue grew.\n\nCosts fell.\n\nyear | revenue\n\n2025 | 12"
    )


def zip_bomb_docx(tmp_path) -> bytes:
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"<" + b" " * (210 * 1024 * 1024))
    return path.read_bytes()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("report.xlsx", b"PK", "unsupported file type '.xlsx'"),
        ("blank.md", b"  \n\n\t", "empty"),
        ("zero.txt", b"", "empty"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary content"),
        ("noext", b"text", "unsupported file type '(none)'"),
        ("fake.pdf", b"%PDF-1.4 not really", "unreadable PDF"),
        ("locked.pdf", make_pdf(["secret plans"], password="pw"), "encrypted PDF (password required)"),
        ("scan.pdf", make_pdf([""]), "PDF without extractable text"),
        ("fake.docx", b"just text", "unreadable .docx"),
        ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "encrypted .docx or legacy .doc"),
        ("empty.html", b"<html><body><nav>only navigation</nav></body></html>", "empty"),
    ],
)
def test_unusable_files_are_skipped_with_a_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SkipDocument, match=re.escape(reason)):
        load_document(path)


def test_oversized_and_zip_bomb_files_are_skipped(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"a" * 2000)
    with pytest.raises(SkipDocument, match=r"too large: 2000 bytes \(limit 1000\)"):
        load_document(tmp_path / "big.txt", max_bytes=1000)
    with pytest.raises(SkipDocument, match="too large unpacked"):
        load_bytes("bomb.docx", zip_bomb_docx(tmp_path))


def test_unreadable_file_is_skipped(tmp_path):
    with pytest.raises(SkipDocument, match="unreadable"):
        load_document(tmp_path / "missing.txt")
