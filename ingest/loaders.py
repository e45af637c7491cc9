"""Document loaders: one function per format, each turning a file's bytes into text.

Each loader also reads the document's title and, where the format has them, its headings with
their offsets in the text (a chunk's section is the nearest heading above its start):

- .txt: title = the first line when it is at most MAX_TITLE_CHARS long and followed by a blank
  line (so a one-line document has none); no headings.
- .md: title = the first ``#`` heading, else as for .txt (without a heading's ``#`` marks);
  headings = ``#`` to ``######`` lines outside code fences.
- .html: title = ``<title>``, else the first ``<h1>``; headings = ``<h1>`` to ``<h6>``.
- .docx: title = the core properties' title, else the first Title-styled paragraph, else the
  first Heading-styled one; headings = paragraphs styled Title or Heading N.
- .pdf: title = the document information's title; no headings.

A document with no title gets its file name's stem (``load_bytes``), so every chunk has one.

Loaders work on bytes, not paths, so a folder ingest and an HTTP upload go through the same
code. A file that cannot or should not be ingested raises ``SkipDocument`` with the reason
shown in the summary.
"""

from __future__ import annotations

import bisect
import io
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

MAX_FILE_BYTES = 50 * 1024 * 1024
# A .docx is a zip: refuse archives that inflate far beyond any real document (zip bombs).
MAX_DOCX_UNPACKED_BYTES = 200 * 1024 * 1024
# Markup elements a document may hold before it is refused: lxml and BeautifulSoup build a
# Python object per element (about a hundred bytes each and more), so a small file of empty
# elements (100 MB of <w:p/>) would cost gigabytes. A 1,000-page report holds well under this.
MAX_MARKUP_ELEMENTS = 1_000_000
# Read a docx part in blocks of this size when counting its elements: memory stays bounded.
_COUNT_BLOCK = 1 << 20
# PDFs with more pages than this are refused before their text is extracted.
MAX_PDF_PAGES = 5000

# pypdf warns on every slightly malformed object; the summary reports what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class SkipDocument(Exception):
    """A file that is not ingested; the message is the reason shown in the summary."""


# Longer "titles" are a first paragraph, not a title (.txt), or are cut to this (other formats).
MAX_TITLE_CHARS = 200


@dataclass(frozen=True, slots=True)
class LoadedText:
    text: str
    # Character offset where each page starts (PDF only): page n starts at page_starts[n - 1].
    page_starts: tuple[int, ...] | None = None
    title: str | None = None
    # (offset in text, heading) of each heading, in text order; empty for formats without headings.
    headings: tuple[tuple[int, str], ...] = ()

    def section_at(self, offset: int) -> str | None:
        """The nearest heading at or above ``offset``; None when there is none."""
        i = bisect.bisect_right(self.headings, offset, key=lambda h: h[0])
        return self.headings[i - 1][1] if i else None

    def page_at(self, offset: int) -> int | None:
        """1-based page number holding the character at ``offset``; None for unpaged formats."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))


_BOMS = [
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
]


def decode_text(data: bytes, declared: str | None = None) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, a declared charset, CP949/EUC-KR, then a guess."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise SkipDocument(f"not decodable as {encoding} despite its byte order mark") from exc
    if b"\x00" in data[:8192]:
        raise SkipDocument("binary content (NUL bytes)")
    candidates = ["utf-8"]
    if declared:
        candidates.append(declared)
    candidates.append("cp949")  # a superset of EUC-KR: what Korean Windows files use
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    # The fallback: let charset-normalizer guess (Latin-1, Shift-JIS, GB18030, ...).
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1024 * 1024]).best()
    if best is None or best.encoding is None:
        raise SkipDocument("not decodable as text (tried UTF-8, CP949 and a charset guess)")
    return data.decode(best.encoding, errors="replace")


def _clean_title(title: str | None) -> str | None:
    title = _SPACES.sub(" ", title or "").strip()
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return title or None


_TITLE_LINE = re.compile(r"\A\s*([^\n]+?)[ \t]*\r?\n[ \t]*\r?\n")


def first_line_title(text: str) -> str | None:
    """The first line, if it is short (at most MAX_TITLE_CHARS) and followed by a blank line."""
    match = _TITLE_LINE.match(text)
    if match is None or len(match.group(1).strip()) > MAX_TITLE_CHARS:
        return None
    return _clean_title(match.group(1))


def load_text(data: bytes) -> LoadedText:
    text = decode_text(data)
    return LoadedText(text, title=first_line_title(text))


_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def load_markdown(data: bytes) -> LoadedText:
    text = decode_text(data)
    headings: list[tuple[int, str]] = []
    title = None
    offset, fenced = 0, False
    for line in text.splitlines(keepends=True):
        if _MD_FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _MD_HEADING.match(line.rstrip("\r\n"))):
            heading = _clean_title(match.group(2))
            if heading:
                headings.append((offset, heading))
                if title is None and len(match.group(1)) == 1:
                    title = heading
        offset += len(line)
    if title is None and (title := first_line_title(text)) and (match := _MD_HEADING.match(title)):
        title = _clean_title(match.group(2))  # a first line that is a lower heading, without its #s
    return LoadedText(text, title=title, headings=tuple(headings))


# Elements that are never a page's main text.
_HTML_NOISE = [
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "svg",
    "canvas",
    "button",
    "select",
    "head",
]
_BLANK_LINES = re.compile(r"\n\s*\n+")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


def load_html(data: bytes) -> LoadedText:
    from bs4 import BeautifulSoup
    from bs4.dammit import EncodingDetector

    tags = data.count(b"<")
    if tags > MAX_MARKUP_ELEMENTS:
        raise SkipDocument(f"too many markup elements: {tags} tags (limit {MAX_MARKUP_ELEMENTS})")
    declared = EncodingDetector.find_declared_encoding(data, is_html=True, search_entire_document=False)
    try:
        soup = BeautifulSoup(decode_text(data, declared), "html.parser")
    except RecursionError as exc:  # absurdly deep nesting
        raise SkipDocument("unreadable HTML: nested too deeply") from exc
    title = _clean_title(soup.title.get_text(" ")) if soup.title else None  # <head> is noise below
    for element in soup.find_all(_HTML_NOISE):
        element.decompose()
    for element in soup.select('[role="navigation"], [role="banner"], [role="contentinfo"], [hidden]'):
        element.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    heading_elements = root.find_all(["h1", "h2", "h3", "h4", "h5", "h6"])
    if title is None:
        title = next((_clean_title(h.get_text(" ")) for h in heading_elements if h.name == "h1"), None)
    text = _BLANK_LINES.sub("\n\n", _html_lines(root.get_text("\n"))).strip()
    # Each heading is found in the text in order, at the start of a line.
    headings: list[tuple[int, str]] = []
    position = 0
    for element in heading_elements:
        first_line = next((line for line in _html_lines(element.get_text("\n")).splitlines() if line), "")
        heading = _clean_title(element.get_text(" "))
        if not first_line or not heading:
            continue
        found = text.find(first_line, position)
        while found > 0 and text[found - 1] != "\n":
            found = text.find(first_line, found + 1)
        if found >= 0:
            headings.append((found, heading))
            position = found + len(first_line)
    return LoadedText(text, title=title, headings=tuple(headings))


def _html_lines(text: str) -> str:
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())


def load_pdf(data: bytes) -> LoadedText:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are encrypted with an empty user password (only editing is restricted).
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise SkipDocument(f"encrypted PDF that cannot be opened here: {exc}") from exc
            if not opened:
                raise SkipDocument("encrypted PDF (password required)")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise SkipDocument(f"too many pages: {len(reader.pages)} (limit {MAX_PDF_PAGES})")
        texts = [page.extract_text() or "" for page in reader.pages]
        metadata = reader.metadata
        title = _clean_title(str(metadata.title)) if metadata is not None and metadata.title else None
    except SkipDocument:
        raise
    except FileNotDecryptedError as exc:
        raise SkipDocument("encrypted PDF (password required)") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise SkipDocument(f"unreadable PDF: {exc.__class__.__name__}: {exc}") from exc
    if not any(t.strip() for t in texts):
        raise SkipDocument("PDF without extractable text (scanned? OCR is not supported)")
    starts, parts, offset = [], [], 0
    for page_text in texts:
        page_text = page_text.strip() + "\n\n"
        starts.append(offset)
        parts.append(page_text)
        offset += len(page_text)
    return LoadedText("".join(parts), tuple(starts), title=title)


def load_docx(data: bytes) -> LoadedText:
    from docx import Document
    from docx.table import Table

    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise SkipDocument("encrypted .docx or legacy .doc (OLE container), not a .docx")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked > MAX_DOCX_UNPACKED_BYTES:
                raise SkipDocument(f"too large unpacked: {unpacked} bytes (limit {MAX_DOCX_UNPACKED_BYTES})")
            _check_docx_element_count(archive)
        document = Document(io.BytesIO(data))
        # Inside the try: python-docx parses parts lazily, and lxml errors surface here too.
        blocks: list[str] = []
        styled: dict[int, str] = {}  # block number -> "title" or "heading", for headings
        for block in document.iter_inner_content():  # paragraphs and tables in body order
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    blocks.append(" | ".join(dict.fromkeys(c for c in cells if c)))  # merged cells repeat
            else:
                style = (block.style.name if block.style is not None else "") or ""
                if style == "Title" or style.startswith("Heading"):
                    styled[len(blocks)] = "title" if style == "Title" else "heading"
                blocks.append(block.text)
        title = _clean_title(document.core_properties.title)
    except SkipDocument:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SkipDocument(f"unreadable .docx: {exc}") from exc
    except MemoryError as exc:
        raise SkipDocument("unreadable .docx: too large to parse") from exc
    except Exception as exc:  # python-docx and lxml raise many types on corrupt files
        raise SkipDocument(f"unreadable .docx: {exc.__class__.__name__}: {exc}") from exc
    parts: list[str] = []
    headings: list[tuple[int, str]] = []
    heading_titles: dict[str, str] = {}  # the first heading of each kind
    offset = 0
    for number, block in enumerate(blocks):
        block = block.strip()
        if not block:
            continue
        if number in styled and (heading := _clean_title(block)):
            headings.append((offset, heading))
            heading_titles.setdefault(styled[number], heading)
        parts.append(block)
        offset += len(block) + 2
    title = title or heading_titles.get("title") or heading_titles.get("heading")
    return LoadedText("\n\n".join(parts), title=title, headings=tuple(headings))


def _check_docx_element_count(archive: zipfile.ZipFile) -> None:
    """Refuse a docx whose XML parts hold more elements than MAX_MARKUP_ELEMENTS, counted
    while inflating block by block, so neither the inflated part nor its tree is in memory."""
    tags = 0
    for info in archive.infolist():
        if not info.filename.endswith(".xml"):
            continue
        with archive.open(info) as part:
            while block := part.read(_COUNT_BLOCK):
                # Every element has a start tag (and maybe an end tag): a bound, not a census.
                tags += block.count(b"<")
                if tags > MAX_MARKUP_ELEMENTS:
                    raise SkipDocument(
                        f"too many XML elements (over {MAX_MARKUP_ELEMENTS} tags): a decompression bomb?"
                    )


LOADERS: dict[str, Callable[[bytes], LoadedText]] = {
    ".txt": load_text,
    ".md": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def check_loadable(name: str, size: int, max_bytes: int = MAX_FILE_BYTES) -> None:
    """Cheap checks before reading a file: its type and its size."""
    suffix = Path(name).suffix.lower()
    if suffix not in LOADERS:
        raise SkipDocument(f"unsupported file type {Path(name).suffix or '(none)'!r}")
    if size > max_bytes:
        raise SkipDocument(f"too large: {size} bytes (limit {max_bytes})")
    if size == 0:
        raise SkipDocument("empty")


def load_bytes(name: str, data: bytes, max_bytes: int = MAX_FILE_BYTES) -> LoadedText:
    """The text of a file called ``name`` with content ``data``; SkipDocument with a reason otherwise."""
    check_loadable(name, len(data), max_bytes)
    loaded = LOADERS[Path(name).suffix.lower()](data)
    if not loaded.text.strip():
        raise SkipDocument("empty")
    if loaded.title is None:
        loaded = replace(loaded, title=_clean_title(Path(name).stem) or name)
    return loaded


def load_document(path: Path, max_bytes: int = MAX_FILE_BYTES) -> LoadedText:
    """The text of the file at ``path``; SkipDocument with a reason if it cannot be ingested."""
    try:
        check_loadable(path.name, path.stat().st_size, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        raise SkipDocument(f"unreadable: {exc.strerror or exc}") from exc
    return load_bytes(path.name, data, max_bytes)
