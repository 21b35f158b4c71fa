"""HTML twins of the tables, which Snakemake's report shows as tables (it offers a
CSV only as a download) and the report's front page inlines.

A twin is one ``<table>`` element in ASCII (non-ASCII characters as character
references, e.g. ``±`` as ``&#177;``), so it reads the same inlined in a page
and opened alone, whatever encoding the viewer assumes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from glaciermap.utils.atomic import write_text_atomic

# Numbers of a CSV table shown with three decimals (km², F1; the CSV keeps them all).
CSV_FLOAT_FORMAT = "{:.3f}".format


def table_html(table: pd.DataFrame, float_format: Callable[[float], str] | None = None) -> str:
    """``table`` as an HTML table: header and rows, no index, empty cells for NaN."""
    html = table.to_html(
        index=False, na_rep="", border=1, float_format=float_format, justify="left"
    )
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def write_table_html(
    table: pd.DataFrame,
    out_html: str | Path,
    float_format: Callable[[float], str] | None = None,
) -> None:
    write_text_atomic(out_html, table_html(table, float_format) + "\n")


def write_csv_html(csv: str | Path, out_html: str | Path) -> None:
    """The HTML twin of a CSV table (e.g. the area tables; a header-only one gives
    an empty table with its header)."""
    table = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    write_table_html(table, out_html, CSV_FLOAT_FORMAT)
