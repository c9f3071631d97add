"""The PDF of an HTML report: printed by headless Chromium, or, without Chromium, the same report as text.

Chromium prints the HTML as it looks in a browser. Where there is no Chromium (or it fails), the fallback writes
the report's own text with Matplotlib: headings, paragraphs and tables (columns aligned, cells wrapped) in
reading order, then one page per figure with its caption, so that the PDF says what the HTML says.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Protocol

#: Characters per line of the text pages (A4 portrait, 6.5 pt monospace) and lines per page.
LINE_WIDTH = 125
LINES_PER_PAGE = 92

_BLOCKS = {"p", "div", "section", "li", "figcaption", "caption", "ul", "ol", "dl", "dt", "dd", "pre", "br"}
_HEADINGS = {"h1": "=", "h2": "=", "h3": "-", "h4": "-"}
_SKIPPED = {"style", "script", "head", "svg"}


class ReportFigure(Protocol):
    """What the PDF needs of a figure (``hepavol.cohort.plots.Figure`` has it)."""

    @property
    def title(self) -> str: ...

    @property
    def caption(self) -> str: ...

    @property
    def png(self) -> bytes: ...


def find_chromium() -> str | None:
    """The path of a Chromium/Chrome executable on the PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_command(chromium: str, profile_dir: str, *extra: str) -> list[str]:
    """Headless Chromium arguments with networking, updates and sync off (nothing leaves the machine)."""
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile_dir}",
        *extra,
    ]


def pdf_with_chromium(chromium: str, html_path: Path, pdf_path: Path, timeout_s: float) -> None:
    """Print ``html_path`` to ``pdf_path`` (atomically) with headless Chromium; RuntimeError if it writes none."""
    with tempfile.TemporaryDirectory(prefix="hepavol-chromium-") as tmp:
        out = Path(tmp) / "report.pdf"
        cmd = chromium_command(
            chromium,
            str(Path(tmp) / "profile"),
            "--no-pdf-header-footer",
            f"--print-to-pdf={out}",
            html_path.resolve().as_uri(),
        )
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        if not out.exists() or out.stat().st_size == 0:
            raise RuntimeError(
                f"chromium did not write a PDF (exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}"
            )
        fd, tmp_target = tempfile.mkstemp(prefix=f".{pdf_path.name}.", suffix=".tmp", dir=pdf_path.parent)
        os.close(fd)
        shutil.copyfile(out, tmp_target)
        os.replace(tmp_target, pdf_path)


@dataclass(frozen=True, slots=True)
class _Heading:
    mark: str  # the underline character: "=" for h1/h2, "-" for h3/h4
    text: str


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Table:
    rows: list[list[str]]
    header_rows: int  # leading rows of <th> cells only


class _TextOfHtml(HTMLParser):
    """Collects an HTML report as headings, paragraphs and tables in reading order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[_Heading | _Text | _Table] = []
        self._buf: list[str] = []
        self._skip = 0
        self._heading: str | None = None
        self._rows: list[list[str]] | None = None
        self._header_rows = 0
        self._cell: list[str] | None = None
        self._row_is_header = False

    def _flush(self) -> None:
        text = " ".join("".join(self._buf).split())
        self._buf = []
        if text:
            self.blocks.append(_Text(text) if self._heading is None else _Heading(self._heading, text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif self._skip:
            return
        elif tag == "table":
            self._flush()
            self._rows, self._header_rows = [], 0
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
            self._row_is_header = True
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []
            if tag == "td":
                self._row_is_header = False
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCKS and self._cell is None:
            self._flush()
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif self._skip:
            return
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._rows:
            if self._row_is_header and self._rows[-1] and len(self._rows) == self._header_rows + 1:
                self._header_rows += 1
        elif tag == "table" and self._rows is not None:
            rows = [r for r in self._rows if r]
            if rows:
                self.blocks.append(_Table(rows, self._header_rows))
            self._rows = None
        elif tag in _HEADINGS:
            self._flush()
            self._heading = None
        elif tag in _BLOCKS and self._cell is None:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif self._rows is None:
            self._buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def _table_lines(rows: list[list[str]], header_rows: int, width: int) -> list[str]:
    """Rows as aligned columns two spaces apart; long cells wrapped inside their column."""
    n = max(len(r) for r in rows)
    rows = [r + [""] * (n - len(r)) for r in rows]
    natural = [max(len(r[i]) for r in rows) for i in range(n)]
    budget = width - 2 * (n - 1)
    cols = list(natural)
    while sum(cols) > budget and max(cols) > 6:  # shrink the widest column until the table fits
        cols[cols.index(max(cols))] -= 1
    lines: list[str] = []
    for k, row in enumerate(rows):
        wrapped = [textwrap.wrap(cell, cols[i], break_on_hyphens=False) or [""] for i, cell in enumerate(row)]
        for j in range(max(len(w) for w in wrapped)):
            parts = [(w[j] if j < len(w) else "").ljust(cols[i]) for i, w in enumerate(wrapped)]
            lines.append("  ".join(parts).rstrip())
        if header_rows and k == header_rows - 1:
            lines.append("  ".join("-" * c for c in cols))
    return lines


def html_text_lines(html: str, width: int = LINE_WIDTH) -> list[str]:
    """The text of an HTML report as lines of at most ``width`` characters (tables may be wider only when a table
    has more columns than fit at 6 characters each)."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines: list[str] = []
    for block in parser.blocks:
        if isinstance(block, _Heading):
            if lines:
                lines.append("")
            wrapped = textwrap.wrap(block.text, width, break_on_hyphens=False)
            lines += wrapped
            lines.append(block.mark * min(width, max(len(w) for w in wrapped)))
        elif isinstance(block, _Text):
            lines += textwrap.wrap(block.text, width, break_on_hyphens=False)
        else:
            lines.append("")
            lines += _table_lines(block.rows, block.header_rows, width)
            lines.append("")
    return lines


def pdf_with_matplotlib(html_path: Path, figures: Sequence[ReportFigure], pdf_path: Path, *, title: str) -> None:
    """The report's text (from its HTML) and then its figures, written atomically with Matplotlib (TrueType fonts,
    so the text can be searched and copied)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from hepavol._atomic import atomic_open

    lines = [f"{title} (PDF without Chromium: the report's text, then its figures)", ""]
    lines += html_text_lines(html_path.read_text(encoding="utf-8"))
    with (
        matplotlib.rc_context({"pdf.fonttype": 42}),
        atomic_open(pdf_path, "wb") as fh,
        PdfPages(fh) as pdf,
    ):
        for start in range(0, len(lines), LINES_PER_PAGE):
            fig = plt.figure(figsize=(8.27, 11.69))
            page = "\n".join(lines[start : start + LINES_PER_PAGE])
            fig.text(0.04, 0.97, page, va="top", family="monospace", fontsize=6.5)
            pdf.savefig(fig)
            plt.close(fig)
        for f in figures:
            img = mpimg.imread(io.BytesIO(f.png), format="png")
            fig = plt.figure(figsize=(11.69, 8.27))
            ax = fig.add_axes((0.03, 0.12, 0.94, 0.83))
            ax.imshow(img)
            ax.axis("off")
            fig.text(0.03, 0.04, f"{f.title}. {f.caption}", wrap=True, fontsize=8)
            pdf.savefig(fig)
            plt.close(fig)


def write_report_pdf(
    html_path: Path,
    pdf_path: Path,
    figures: Sequence[ReportFigure],
    *,
    title: str,
    use_chromium: bool = True,
    timeout_s: float = 120.0,
) -> str:
    """Write the PDF of the report; returns how: ``"chromium"`` or ``"matplotlib"`` (no Chromium found or it failed)."""
    chromium = find_chromium() if use_chromium else None
    if chromium:
        try:
            pdf_with_chromium(chromium, html_path, pdf_path, timeout_s)
            return "chromium"
        except (RuntimeError, subprocess.TimeoutExpired, OSError):
            pass
    pdf_with_matplotlib(html_path, figures, pdf_path, title=title)
    return "matplotlib"
