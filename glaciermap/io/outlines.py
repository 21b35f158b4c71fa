"""Read glacier outlines (GLIMS or RGI) as one polygon per glacier in the scene CRS.

GLIMS files hold several rows per glacier: one or more analyses (each with a
source image date ``src_date`` and an analysis time ``anlys_time``), each made of
``glac_bound`` polygons and ``intrnl_rock`` polygons (nunataks) that are not
glacier. For each glacier the analysis whose source date is nearest the scene
date is kept, and its internal rock is subtracted. RGI files hold one polygon
per glacier already.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.crs import CRS

from glaciermap.errors import ConfigError, InputDataError

GLIMS_BOUNDARY = "glac_bound"
GLIMS_ROCK = "intrnl_rock"
RGI_ID_COLUMNS = ("RGIId", "rgi_id")
NAME_COLUMNS = ("Name", "glac_name")  # RGI 6, RGI 7 and GLIMS


def _fields(path: Path, layer: str | None) -> list[str]:
    try:
        return list(pyogrio.read_info(path, layer=layer)["fields"])
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise InputDataError(f"cannot read outline file {path}: {exc}") from exc


def detect_format(path: Path, layer: str | None = None, fmt: str = "auto") -> str:
    """'glims' or 'rgi', from the attribute names when ``fmt`` is 'auto'."""
    fields = _fields(path, layer)
    glims = {"line_type", "glac_id"} <= set(fields)
    rgi = any(column in fields for column in RGI_ID_COLUMNS)
    if fmt == "glims" and not glims:
        raise InputDataError(f"outline file {path} lacks the GLIMS attributes line_type, glac_id")
    if fmt == "rgi" and not rgi:
        raise InputDataError(
            f"outline file {path} lacks an RGI id attribute ({', '.join(RGI_ID_COLUMNS)})"
        )
    if fmt != "auto":
        return fmt
    if glims:
        return "glims"
    if rgi:
        return "rgi"
    raise InputDataError(
        f"outline file {path} is neither GLIMS (line_type, glac_id) nor RGI (RGIId); "
        "check config key 'data.outlines.format'"
    )


def _id_column(fmt: str, fields: list[str]) -> str:
    if fmt == "glims":
        return "glac_id"
    return next(c for c in RGI_ID_COLUMNS if c in fields)


def glacier_ids(path: str | Path, layer: str | None = None, fmt: str = "auto") -> set[str]:
    """The glacier ids in an outline file (attributes only, no geometry is read)."""
    path = Path(path)
    fmt = detect_format(path, layer, fmt)
    column = _id_column(fmt, _fields(path, layer))
    try:
        table = pyogrio.read_dataframe(path, layer=layer, columns=[column], read_geometry=False)
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise InputDataError(f"cannot read outline file {path}: {exc}") from exc
    return set(table[column].dropna().astype(str))


def _dates(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """The first parseable date among ``columns`` for each row (NaT when none)."""
    result = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    for column in columns:
        if column not in frame:
            continue
        text = frame[column].astype(str).str.slice(0, 10)
        if column == "BgnDate":  # RGI 6: YYYYMMDD, -9999999 when unknown
            parsed = pd.to_datetime(text, errors="coerce", format="%Y%m%d")
        else:
            parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        result = result.fillna(parsed)
    return result


def _nearest_analysis(
    glacier: pd.DataFrame, analysis: str, target: pd.Timestamp
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The rows of the analysis dated nearest ``target`` (ties: the later one)."""
    dated = glacier.dropna(subset=["_date"])
    if dated.empty:  # no analysis date at all: nothing to choose between
        return glacier, pd.NaT
    per_analysis = dated.groupby(analysis)["_date"].first()
    best = max(per_analysis.index, key=lambda a: (-abs(per_analysis[a] - target), per_analysis[a]))
    return glacier[glacier[analysis] == best], per_analysis[best]


def _glims_outlines(frame: gpd.GeoDataFrame, acquired: dt.date) -> gpd.GeoDataFrame:
    frame = frame.assign(_date=_dates(frame, ("src_date", "anlys_time")))
    analysis = "anlys_id" if "anlys_id" in frame else "_date"
    rows = []
    target = pd.Timestamp(acquired)
    for glac_id, glacier in frame.groupby("glac_id", sort=True):
        chosen, date = _nearest_analysis(glacier, analysis, target)
        boundary = chosen[chosen["line_type"] == GLIMS_BOUNDARY].geometry
        if boundary.empty:
            continue
        rock = chosen[chosen["line_type"] == GLIMS_ROCK].geometry
        polygon = shapely.make_valid(boundary.union_all())
        if not rock.empty:
            polygon = polygon.difference(shapely.make_valid(rock.union_all()))
        name = _names(chosen).iloc[0]
        rows.append({"glacier_id": str(glac_id), "name": name, "date": date, "geometry": polygon})
    columns = ["glacier_id", "name", "date", "geometry"]
    return gpd.GeoDataFrame(rows, columns=columns, crs=frame.crs)


def _names(frame: pd.DataFrame) -> pd.Series:
    """The glacier name of each row, missing (NA) where the file gives none."""
    column = next((c for c in NAME_COLUMNS if c in frame), None)
    if column is None:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    names = frame[column].astype("string").str.strip()
    return names.where(names.str.len() > 0)


def _rgi_outlines(frame: gpd.GeoDataFrame, column: str) -> gpd.GeoDataFrame:
    dates = _dates(frame, ("BgnDate", "src_date"))
    geometry = shapely.make_valid(frame.geometry.values)
    return gpd.GeoDataFrame(
        {
            "glacier_id": frame[column].astype(str).values,
            "name": _names(frame).values,
            "date": dates.values,
        },
        geometry=geometry,
        crs=frame.crs,
    )


def read_outlines(
    path: str | Path,
    acquired: dt.date,
    crs: CRS,
    layer: str | None = None,
    fmt: str = "auto",
    glaciers: list[str] | None = None,
) -> gpd.GeoDataFrame:
    """One (multi)polygon per glacier, columns ``glacier_id``, ``name`` (NA when the
    file names none), ``date``, in ``crs``.

    ``acquired`` picks the nearest GLIMS analysis; ``glaciers`` keeps only those ids.
    """
    path = Path(path)
    fmt = detect_format(path, layer, fmt)
    try:
        frame = gpd.read_file(path, layer=layer)
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise InputDataError(f"cannot read outline file {path}: {exc}") from exc
    if frame.empty:
        raise InputDataError(f"outline file {path} holds no outlines")
    if frame.crs is None:
        raise InputDataError(f"outline file {path} has no CRS")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if fmt == "glims":
        outlines = _glims_outlines(frame, acquired)
    else:
        outlines = _rgi_outlines(frame, _id_column(fmt, list(frame.columns)))
    if glaciers is not None:
        missing = sorted(set(glaciers) - set(outlines["glacier_id"]))
        if missing:
            raise ConfigError(
                f"config key 'data.outlines.glaciers': {', '.join(missing)} "
                f"not in outline file {path}"
            )
        outlines = outlines[outlines["glacier_id"].isin(glaciers)]
    if outlines.empty:
        raise InputDataError(f"outline file {path} holds no glacier boundary polygons")
    return outlines.to_crs(crs).reset_index(drop=True)
