"""The report as PDF: the HTML template laid out by WeasyPrint for A4 paper."""

from reports.renderers.html import render_html
from reports.types.base import ReportData


def render_pdf(data: ReportData) -> bytes:
    # Imported here: WeasyPrint takes over a second to import (CONVEYOR_PRELOAD can preload it).
    import weasyprint

    html = weasyprint.HTML(string=render_html(data, for_print=True))
    # Whole fonts: subsetting them costs seconds on long reports and saves only ~1 MB.
    return html.write_pdf(full_fonts=True) or b""
