"""What the workflow prints when it has finished: Table 3 and where the maps are.

Called by the Snakefile's ``onsuccess`` handler; imports neither torch nor
pandas, so it costs nothing at the end of a run.
"""

from __future__ import annotations

from pathlib import Path

TABLE3_MARKDOWN = "results/table3.md"
MAPS = "results/maps"
MAP_FILE = "mask.tif"
LISTED_FOLDERS = 12  # map folders named one by one; the rest are counted


def workflow_summary(workdir: str | Path = ".") -> str | None:
    """Table 3 as Markdown and the map folders, or None when the run made neither
    (e.g. a target before Table 3)."""
    root = Path(workdir)
    table = root / TABLE3_MARKDOWN
    folders = sorted(p.parent.relative_to(root) for p in (root / MAPS).glob(f"**/{MAP_FILE}"))
    if not table.is_file() and not folders:
        return None
    lines = ["", "glaciermap summary"]
    if table.is_file():
        lines += [
            "",
            f"Table 3, test-region F1 ({TABLE3_MARKDOWN}):",
            "",
            table.read_text().rstrip(),
        ]
    if folders:
        lines += [
            "",
            f"Maps (mask.tif; a model's also probability.tif, outlines.gpkg; open in QGIS), "
            f"{len(folders)} folders under {MAPS}/:",
        ]
        lines += [f"  {folder}/" for folder in folders[:LISTED_FOLDERS]]
        if len(folders) > LISTED_FOLDERS:
            lines.append(f"  ... and {len(folders) - LISTED_FOLDERS} more")
        areas = root / MAPS / "areas.csv"
        if areas.is_file():
            lines.append(
                f"Glacier areas per date and their change: {MAPS}/areas.csv, {MAPS}/area_change.csv"
            )
    lines += ["", "All tables and figures with captions: snakemake --report report.html", ""]
    return "\n".join(lines)
