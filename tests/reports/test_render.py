"""The rendered report: HTML numbers equal the API's, the HTML stands alone, the PDF is paginated and drawn."""

from __future__ import annotations

import html as html_lib
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from kpis import Warehouse
from kpis.formatting import value_text
from reports.build import documents, prepare
from reports.charts import ChartRenderer
from reports.context import ReportContext
from reports.render import data_uri, render_html, render_pdf
from tests.conftest import require_tool
from tests.reports.conftest import Built
from tests.reports.practice import MONTH, patient_key

pytestmark = pytest.mark.browser


def kpi_cells(html: str) -> dict[str, dict[str, str]]:
    """kpi id -> {cell class -> text} of the KPI table rows."""
    out = {}
    for kpi_id, body in re.findall(r'<tr data-kpi="([a-z0-9_]+)"[^>]*>(.*?)</tr>', html, flags=re.S):
        cells = re.findall(r'<td class="([^"]*)">(.*?)</td>', body, flags=re.S)
        out[kpi_id] = {cls.split()[-1]: html_lib.unescape(re.sub(r"<[^>]+>", "", text)).strip() for cls, text in cells}
    return out


def test_html_shows_the_api_values_for_the_month(practice_report: Built, wh: Warehouse) -> None:
    api = wh.compute(start=MONTH, end=MONTH)
    specs = {s.id: s for s in wh.catalog()}
    cells = kpi_cells(practice_report.html)
    assert set(cells) == set(specs)
    for record in api.itertuples():
        spec = specs[record.kpi_id]
        row = next(r for r in practice_report.ctx.rows if r.id == record.kpi_id)
        if row.period != MONTH:
            continue  # reported for its latest complete month, checked in test_context
        shown = "n < 11" if 0 < record.n < 11 else value_text(record.value, spec)
        assert cells[record.kpi_id]["value"] == shown, record.kpi_id
        assert cells[record.kpi_id]["target"] == value_text(record.target, spec)
    assert cells["no_show_rate"]["value"] == "20.0%"
    assert cells["no_show_rate"]["month-change"] == "+9.8 pts"
    assert cells["no_show_rate"]["status-cell"] == "Off target"
    assert cells["call_abandonment_rate"]["value"] == "0.0%"
    assert cells["call_abandonment_rate"]["month-change"] == "−10.0 pts"
    for sentence in practice_report.ctx.summary:
        assert html_lib.escape(sentence, quote=False) in practice_report.html


def test_html_is_self_contained_and_carries_no_patient_key(practice_report: Built) -> None:
    html = practice_report.html
    assert re.findall(r'(?:src|href)="(?!data:)', html) == []
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    charts = re.findall(r'<img src="data:image/svg\+xml;base64,', html)
    assert len(charts) == len(practice_report.ctx.trends) == 10
    assert re.search(r"\b[0-9a-f]{64}\b", html) is None
    assert patient_key(1) not in html
    assert "&lt;11" in html  # the small counts (portal messages, quarantined records)


def pdf_pages(pdf: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run([require_tool("pdftotext"), "-layout", str(path), "-"], capture_output=True, check=True)
    return text.stdout.decode("utf-8").split("\f")[:-1]


def test_pdf_pages_print_scope_filters_definitions_and_page_numbers(practice_report: Built, tmp_path: Path) -> None:
    pages = pdf_pages(practice_report.pdf, tmp_path)
    assert 4 <= len(pages) <= 8
    for number, page in enumerate(pages, start=1):
        flat = " ".join(page.split())
        assert "Riverbend Family Medicine — Monthly report, October 2026" in flat
        assert "Scope: Whole practice (all locations) · Filters: none (all locations)" in flat
        assert "Definitions: clinic-kpis" in flat
        assert f"Page {number} of {len(pages)}" in flat
    assert "No-show rate rose to 20.0%" in " ".join(pages[0].split())
    assert re.search(r"\b[0-9a-f]{64}\b", "".join(pages)) is None


def test_pdf_first_page_renders_to_a_picture_that_is_not_blank(practice_report: Built, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(practice_report.pdf)
    pdftoppm = require_tool("pdftoppm")
    subprocess.run([pdftoppm, "-r", "50", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "page")], check=True)
    (png,) = tmp_path.glob("page*.png")
    with Image.open(png) as image:
        grey = image.convert("L")
        width, height = grey.size
        inked = sum(grey.histogram()[:200])
    assert (width, height) == (425, 550)  # Letter at 50 dpi
    assert 0.02 < inked / (width * height) < 0.5


def test_pdf_page_size_follows_the_paper_setting(practice_ctx: ReportContext, tmp_path: Path) -> None:
    pixel = data_uri(b"\x89PNG\r\n\x1a\n" + bytes.fromhex(PNG_1X1), "image/png")
    images = {t.row.id: pixel for t in practice_ctx.trends}
    path = tmp_path / "a4.pdf"
    path.write_bytes(render_pdf(render_html(practice_ctx, images, "a4")))
    info = subprocess.run([require_tool("pdfinfo"), str(path)], capture_output=True, check=True).stdout.decode()
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info), info


def test_location_report_prints_its_scope_and_withholds_small_values(
    practice: object, renderer: ChartRenderer, tmp_path: Path
) -> None:
    with practice.open() as warehouse:
        ctx = prepare(warehouse, MONTH, "NORTH")
    files = documents(ctx, renderer, ("html", "pdf"), "letter")
    html = files["html"].decode("utf-8")
    assert kpi_cells(html)["no_show_rate"]["value"] == "n < 11"
    pages = pdf_pages(files["pdf"], tmp_path)
    assert all("Scope: Northside (NORTH) · Filters: location = NORTH" in " ".join(p.split()) for p in pages)


# A 1x1 white PNG without its 8-byte signature.
PNG_1X1 = (
    "0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8ffff3f0005fe02fe"
    "a7356a9f0000000049454e44ae426082"
)
