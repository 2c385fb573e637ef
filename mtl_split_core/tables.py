"""Label tables people write by hand: CSV or TSV (delimiter sniffed), one dict per row.

Shared by training on your own images (mtl_split_training.datasets.csv_images) and by
evaluation's sidecar labels (mtl_split_tools.labels), so both read the same files the same way.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .errors import MtlSplitError


class TableError(MtlSplitError):
    """A label table that cannot be read."""


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every data row as {column: cell}; a UTF-8 BOM (Excel) is dropped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise TableError(f"{path}: cannot read ({e})") from e
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    if not rows:
        raise TableError(f"{path}: no data rows")
    return rows
