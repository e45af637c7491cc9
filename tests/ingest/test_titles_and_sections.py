"""Each loader's title and headings, and the fallback to the file name's stem."""

from __future__ import annotations

import io

import pytest

from ingest.loaders import MAX_TITLE_CHARS, load_bytes
from tests.ingest.docgen import make_docx, make_pdf


def sections(loaded) -> list[str]:
    """Each heading, checked to sit at its offset in the text."""
    for offset, heading in loaded.headings:
        assert loaded.text[offset:].lstrip("# ").startswith(heading.split()[0]), (offset, heading)
    return [heading for _, heading in loaded.headings]


def test_txt_title_is_a_short_first_line_followed_by_a_blank_line():
    loaded = load_bytes("notes.txt", b"1973 oil crisis\n\nThe crisis began in October.\n")
    assert loaded.title == "1973 oil crisis" and loaded.headings == ()
    assert loaded.section_at(30) is None


@pytest.mark.parametrize(
    "content",
    [
        "A one-line document without a title.",
        "First line\nsecond line right below it, so no title line.\n\nMore.",
        "x" * (MAX_TITLE_CHARS + 1) + "\n\nA first paragraph is not a title.",
        "\n\n\n",  # skipped as empty, below
    ],
)
def test_txt_without_a_title_line_gets_the_file_name_stem(content):
    if not content.strip():
        with pytest.raises(Exception, match="empty"):
            load_bytes("blank-report.txt", content.encode())
        return
    assert load_bytes("blank-report.txt", content.encode()).title == "blank-report"


def test_markdown_title_and_sections_skip_code_fences():
    text = (
        "Intro line\n\n# The Guide #\n\nSome text.\n\n## Install\n\npip install it.\n\n"
        "```\n# not a heading\n```\n\n### Configure\n\nSet RAGQA_X.\n"
    )
    loaded = load_bytes("guide.md", text.encode())
    assert loaded.title == "The Guide"
    assert sections(loaded) == ["The Guide", "Install", "Configure"]
    assert loaded.section_at(0) is None
    assert loaded.section_at(text.index("pip install")) == "Install"
    assert loaded.section_at(text.index("not a heading")) == "Install"
    assert loaded.section_at(text.index("Set RAGQA_X")) == "Configure"


def test_markdown_without_a_hash_heading_falls_back_to_the_first_line_rule():
    assert load_bytes("a.md", b"Release notes\n\nNothing new.").title == "Release notes"
    assert load_bytes("b.md", b"## Only a subsection\n\ntext").title == "Only a subsection"
    assert load_bytes("c.md", b"One line only").title == "c"


def test_html_title_from_the_title_element_else_the_first_h1():
    html = (
        "<html><head><title>Pharos  guide</title></head><body><nav>Menu</nav><main>"
        "<h1>The Lighthouse</h1><p>Intro.</p><h2>Keeper <em>duties</em></h2><p>Light the lamp.</p>"
        "<h3>Night</h3><p>Stay awake.</p></main></body></html>"
    )
    loaded = load_bytes("page.html", html.encode())
    assert loaded.title == "Pharos guide"
    assert sections(loaded) == ["The Lighthouse", "Keeper duties", "Night"]
    assert loaded.section_at(loaded.text.index("Light the lamp")) == "Keeper duties"
    assert loaded.section_at(loaded.text.index("Stay awake")) == "Night"
    no_title = load_bytes("page2.html", b"<body><h1>Harbour</h1><p>Boats.</p></body>")
    assert no_title.title == "Harbour"
    bare = load_bytes("page3.html", b"<body><p>Only a paragraph.</p></body>")
    assert bare.title == "page3" and bare.headings == ()


def test_docx_title_from_core_properties_else_the_first_heading():
    from docx import Document

    document = Document()
    document.core_properties.title = "Fleet memo"
    document.add_heading("Spring", level=1)
    document.add_paragraph("The submarines return.")
    document.add_heading("Summer", level=2)
    document.add_paragraph("They sail again.")
    out = io.BytesIO()
    document.save(out)
    loaded = load_bytes("memo.docx", out.getvalue())
    assert loaded.title == "Fleet memo"
    assert sections(loaded) == ["Spring", "Summer"]
    assert loaded.section_at(loaded.text.index("They sail")) == "Summer"
    assert load_bytes("memo2.docx", make_docx(["Memo", "The fleet returns."])).title == "Memo"


def test_pdf_title_from_its_metadata_else_the_stem():
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(["The orchard has apple trees."])
    assert load_bytes("report.pdf", plain).title == "report"
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    writer.add_metadata({"/Title": "Orchard report"})
    out = io.BytesIO()
    writer.write(out)
    loaded = load_bytes("report.pdf", out.getvalue())
    assert loaded.title == "Orchard report" and loaded.headings == ()
