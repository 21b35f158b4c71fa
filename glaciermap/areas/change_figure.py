"""The change figure: predicted glacier outlines of two dates over the RGB image.

Glacier lost between the dates is filled red, glacier gained blue; the earlier
date's outline is drawn in yellow and the later in cyan, over the later date's
RGB image (outlines from the GeoPackages when given, else the masks' contours).
With one date the figure shows that date's outline and glacier area over its
image. Given the dates' validity rasters, pixels not observed on either date
(cloud, shadow, defect, no data) are greyed out, and the areas and the change
in the title are those over the area observed on both dates, as in
``results/maps/area_change.csv``. Given a seed ensemble's uncertainty rasters,
the pixels where its members disagree (standard deviation of their
probabilities above the threshold, on either date) are drawn in magenta.
Rasters are read decimated so that the figure's cost does not grow with the
scene.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning

from glaciermap.areas.areas import row_pixel_areas_km2
from glaciermap.errors import InputDataError
from glaciermap.io.validity import VALID
from glaciermap.reporting.map_axes import map_axes
from glaciermap.utils.atomic import atomic_path

MAX_SIDE = 1200
DPI = 120
UNOBSERVED = (0.55, 0.55, 0.55, 0.85)
LOST = (0.85, 0.1, 0.1, 0.6)
GAINED = (0.1, 0.35, 0.95, 0.6)
UNCERTAIN = (0.85, 0.0, 0.85, 0.65)
OUTLINE_COLOURS = ("yellow", "cyan")


def _shape(dataset: rasterio.DatasetReader) -> tuple[int, int]:
    scale = max(1.0, max(dataset.height, dataset.width) / MAX_SIDE)
    return max(1, round(dataset.height / scale)), max(1, round(dataset.width / scale))


def _read(path: Path, shape: tuple[int, int], indexes: list[int] | int, resampling: Resampling):
    if not Path(path).is_file():
        raise InputDataError(f"figure input not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            out_shape = (len(indexes), *shape) if isinstance(indexes, list) else shape
            return dataset.read(indexes, out_shape=out_shape, resampling=resampling)


def rgb_image(scene_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) display RGB of a blue/green/red/nir scene, 2-98 % stretch per band."""
    bands = _read(scene_path, shape, [3, 2, 1], Resampling.average).astype(np.float32)
    rgb = np.zeros((*shape, 3), np.float32)
    for i, band in enumerate(bands):
        finite = band[np.isfinite(band)]
        if finite.size:
            low, high = np.percentile(finite, (2, 98))
            rgb[..., i] = np.clip((band - low) / max(high - low, 1e-6), 0, 1)
    return np.nan_to_num(rgb)


def _full(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Band 1 of a raster at full resolution and the area of its pixels per row."""
    if not Path(path).is_file():
        raise InputDataError(f"figure input not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            pixel = row_pixel_areas_km2(dataset.transform, dataset.crs, dataset.height)
            return dataset.read(1), pixel


def _glacier_areas_km2(
    mask_paths: Sequence[Path], validity: Sequence[Path] | None
) -> tuple[list[float], float | None]:
    """Each mask's glacier area within the pixels observed on every date, and that
    common observed area (None without validity rasters)."""
    common: np.ndarray | None = None
    pixel = np.zeros(0)
    for path in validity or ():
        codes, pixel = _full(path)
        common = codes == VALID if common is None else common & (codes == VALID)
    areas = []
    for path in mask_paths:
        mask, pixel = _full(path)
        glacier = mask == 1 if common is None else (mask == 1) & common
        areas.append(float((glacier * pixel[:, None]).sum()))
    observed = None if common is None else float((common * pixel[:, None]).sum())
    return areas, observed


def change_figure(
    scene_path: str | Path,
    mask_paths: Sequence[str | Path],
    dates: Sequence[str],
    out_path: str | Path,
    title: str = "",
    outlines: Sequence[str | Path] | None = None,
    validity: Sequence[str | Path] | None = None,
    uncertainty: Sequence[str | Path] | None = None,
    uncertainty_threshold: float = 0.2,
) -> Figure:
    """Draw one or two dates' masks (``mask_paths`` in date order) over ``scene_path``.

    The outlines drawn are the GeoPackages ``outlines`` (one per mask) when
    given, else the masks' contours; ``validity`` (one
    ``results/validity/{date}.tif`` per mask) greys out what was not observed;
    ``uncertainty`` (an ensemble's ``uncertainty.tif`` per mask) marks the pixels
    above ``uncertainty_threshold``. Returns the saved Figure.
    """
    if len(mask_paths) not in (1, 2) or len(dates) != len(mask_paths):
        raise InputDataError("a change figure needs one or two masks, one date label each")
    if outlines is not None and len(outlines) != len(mask_paths):
        raise InputDataError("a change figure needs one outline file per mask")
    if validity is not None and len(validity) != len(mask_paths):
        raise InputDataError("a change figure needs one validity raster per mask")
    if uncertainty is not None and len(uncertainty) != len(mask_paths):
        raise InputDataError("a change figure needs one uncertainty raster per mask")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(scene_path) as scene:
            shape = _shape(scene)
            left, bottom, right, top = scene.bounds
            crs = scene.crs
    extent = (left, right, bottom, top)
    masks = [_read(Path(p), shape, 1, Resampling.nearest) == 1 for p in mask_paths]
    observed = np.ones(shape, bool)
    for path in validity or ():
        observed &= _read(Path(path), shape, 1, Resampling.nearest) == VALID
    uncertain = np.zeros(shape, bool)
    for path in uncertainty or ():
        spread = _read(Path(path), shape, 1, Resampling.nearest)
        uncertain |= np.nan_to_num(spread, nan=0.0) > uncertainty_threshold
    uncertain &= observed
    areas, common_km2 = _glacier_areas_km2(
        [Path(p) for p in mask_paths], None if validity is None else [Path(p) for p in validity]
    )

    # Figure without pyplot: no global state, no GUI backend needed.
    figure = Figure(figsize=(9, 9 * shape[0] / shape[1] + 0.8))
    axes = figure.subplots()
    axes.imshow(rgb_image(Path(scene_path), shape), extent=extent, origin="upper")
    handles = []
    if len(masks) == 2:
        overlay = np.zeros((*shape, 4), np.float32)
        overlay[masks[0] & ~masks[1] & observed] = LOST
        overlay[masks[1] & ~masks[0] & observed] = GAINED
        overlay[~observed] = UNOBSERVED
        axes.imshow(overlay, extent=extent, origin="upper", interpolation="nearest")
        change = areas[1] - areas[0]
        handles += [
            Patch(color=LOST, label=f"lost {dates[0]} → {dates[1]}"),
            Patch(color=GAINED, label=f"gained {dates[0]} → {dates[1]}"),
        ]
        subtitle = (
            f"{dates[0]}: {areas[0]:.2f} km², {dates[1]}: {areas[1]:.2f} km², "
            f"change {change:+.2f} km²"
            + (f" ({100 * change / areas[0]:+.1f} %)" if areas[0] > 0 else "")
        )
    else:
        fill = np.zeros((*shape, 4), np.float32)
        fill[masks[0]] = (1.0, 1.0, 1.0, 0.25)
        fill[~observed] = UNOBSERVED
        axes.imshow(fill, extent=extent, origin="upper", interpolation="nearest")
        subtitle = f"{dates[0]}: glacier area {areas[0]:.2f} km² (one date, no change to show)"
    if uncertain.any():
        marked = np.zeros((*shape, 4), np.float32)
        marked[uncertain] = UNCERTAIN
        axes.imshow(marked, extent=extent, origin="upper", interpolation="nearest")
        label = f"uncertain: members' std > {uncertainty_threshold:g}"
        handles.append(Patch(color=UNCERTAIN, label=label))
    if common_km2 is not None:
        subtitle += f"\nover the {common_km2:.2f} km² observed on " + (
            "both dates" if len(masks) == 2 else "this date"
        )
        if not observed.all():
            handles.append(Patch(color=UNOBSERVED, label="not observed (cloud, shadow, no data)"))
    for i, (date, colour) in enumerate(zip(dates, OUTLINE_COLOURS, strict=False)):
        if outlines is not None:
            polygons = gpd.read_file(outlines[i])
            if len(polygons):
                polygons.boundary.plot(ax=axes, color=colour, linewidth=0.8)
        elif masks[i].any() and not masks[i].all():
            axes.contour(
                masks[i].astype(np.uint8),
                levels=[0.5],
                colors=[colour],
                linewidths=0.8,
                extent=extent,
                origin="upper",
            )
        handles.append(Patch(facecolor="none", edgecolor=colour, label=f"outline {date}"))
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)
    axes.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)
    axes.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    map_axes(axes, crs, data_units_per_km=1000.0)
    figure.tight_layout()
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, dpi=DPI)
    return figure
