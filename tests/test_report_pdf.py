"""The PDF of a report without Chromium (``hepavol.report_pdf``): the report's own text, readable, then its figures.

The text pages are read back with pypdf (an independent PDF reader): every heading and table row of the HTML
report must be in the PDF, not a JSON dump.
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from pathlib import Path

from hepavol.report_pdf import html_text_lines

SMALL = """<html><head><style>h1 {color: red}</style><title>t</title></head><body>
<h1>Cohort report</h1><p>Two   patients,
one line.</p>
<table><tr><th>criterion</th><th>HR</th></tr><tr><td>RECIST 1.1 category</td><td>2.10</td></tr>
<tr><td>% change of total tumour volume</td><td>1.35 [1.1, 1.7]</td></tr></table>
<h3>Notes &amp; warnings</h3><ul><li>first</li><li>second</li></ul>
<figure><img src="data:image/png;base64,AAAA"><figcaption>Figure 1. A forest plot.</figcaption></figure>
</body></html>"""


def test_html_text_lines_keeps_headings_paragraphs_and_aligned_tables() -> None:
    assert html_text_lines(SMALL) == [
        "Cohort report",
        "=============",
        "Two patients, one line.",
        "",
        "criterion                        HR",
        "-------------------------------  ---------------",
        "RECIST 1.1 category              2.10",
        "% change of total tumour volume  1.35 [1.1, 1.7]",
        "",
        "",
        "Notes & warnings",
        "----------------",
        "first",
        "second",
        "Figure 1. A forest plot.",
    ]


def test_a_table_wider_than_the_page_wraps_inside_its_columns() -> None:
    cell = "word " * 30
    html = f"<table><tr><th>a</th><th>b</th></tr><tr><td>{cell}</td><td>{cell}</td></tr></table>"
    lines = html_text_lines(html, width=60)
    assert max(len(line) for line in lines) <= 60
    assert sum(line.count("word") for line in lines) == 60  # nothing lost


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2", "h3"):
            self.inside = True
            self.found.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.found[-1] += data


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader  # a test dependency (pyproject's test extra)

    reader = PdfReader(str(path))
    return " ".join((page.extract_text() or "") for page in reader.pages)


def _words(text: str, *, html: bool = True) -> str:
    """Words and numbers only: the PDF's line breaks and (``html``) the HTML's tags and entities do not count."""
    plain = html_lib.unescape(re.sub(r"<[^>]+>", "", text)) if html else text  # inline tags: no space
    return " ".join(re.sub(r"[^\w%.,\-\[\]]+", " ", plain).split())


def test_cohort_report_pdf_without_chromium_has_the_reports_text(tmp_path: Path) -> None:
    from hepavol.cohort import simulate_table
    from hepavol.cohort.pipeline import run_cohort

    run = run_cohort(simulate_table(40, seed=3), tmp_path / "out", use_chromium=False)
    assert run.pdf_method == "matplotlib"
    assert run.report_pdf is not None
    html = run.report_html.read_text(encoding="utf-8")
    parser = _Headings()
    parser.feed(html)
    assert len(parser.found) > 5
    text = _words(_pdf_text(run.report_pdf), html=False)
    assert "landmark_n" not in text  # not the results.json dump of before
    for heading in parser.found:
        assert _words(heading) in text, heading
    # every paragraph of the HTML, in order (lines wrap, words stay in order)
    paragraphs = [_words(p) for p in re.findall(r"<p>(.*?)</p>", html, flags=re.S)]
    assert len(paragraphs) > 5
    for paragraph in paragraphs:
        assert paragraph in text, paragraph
    # the first table's cells (a cell may wrap inside its column, so its words, not the whole cell)
    table = re.search(r"<table.*?</table>", html, flags=re.S)
    assert table is not None
    words = set(text.split())
    for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", table.group(0), flags=re.S):
        assert set(_words(cell).split()) <= words, cell


def test_agreement_report_pdf_engine_matplotlib_has_the_reports_text(tmp_path: Path) -> None:
    """``hepavol agreement ... --pdf-engine matplotlib``: the PDF holds every heading and paragraph of report.html."""
    from tests._agreement_helpers import write_reads_table

    from hepavol.cli import main
    from hepavol.simulate.readers import default_reads

    table = write_reads_table(tmp_path / "readers.csv", patients=12, seed=5, reads=default_reads(2))
    out = tmp_path / "out"
    assert main(["agreement", str(table), "--out", str(out), "--pdf-engine", "matplotlib"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    text = _words(_pdf_text(out / "report.pdf"), html=False)
    parser = _Headings()
    parser.feed(html)
    assert len(parser.found) > 3
    for piece in [*parser.found, *re.findall(r"<p>(.*?)</p>", html, flags=re.S)]:
        assert _words(piece) in text, piece
