"""Figures 2-8 of the study as PNG files (matplotlib, Agg backend).

- :func:`figure_training_curves`: loss and F1 per epoch, train and validation,
  one colour per group (architecture for Figure 2, augmentation mode for
  Figure 3, training dates for Figure 4), mean over seeds with a min-max band.
- :func:`figure_overlay`: Figures 5-8: for one region and date, the raw glacier
  probability and the predicted glacier (a light fill and its outline) over the
  RGB image, both with the reference outline, cropped to the region, in km of
  the CRS (EPSG code) with a scale bar; pixels the date did not observe
  (cloud, shadow, defect, no data) are grey in both panels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.patheffects as path_effects
import numpy as np
import pandas as pd
import rasterio
from matplotlib.artist import Artist
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from rasterio.enums import Resampling
from rasterio.windows import Window

from glaciermap.errors import InputDataError
from glaciermap.evaluation.metrics import REGION_CODES, check_same_grid
from glaciermap.io.validity import VALID
from glaciermap.labels import NODATA
from glaciermap.reporting.map_axes import map_axes
from glaciermap.reporting.tables import read_json
from glaciermap.runs import DISPLAY_NAMES
from glaciermap.utils.atomic import atomic_path

log = logging.getLogger(__name__)

PathLike = str | Path
DPI = 150
MAX_PIXELS_SIDE = 1500  # larger crops are read decimated; a page shows no more
UNOBSERVED_GREY = (0.55, 0.55, 0.55)
PREDICTED_FILL = (1.0, 0.2, 0.0, 0.22)
PREDICTED_LINE = (1.0, 0.25, 0.0, 1.0)
AUG_LABELS = {
    "noaug": "no augmentation",
    "aug-concat": "augmented copies added",
    "aug-online": "online augmentation",
}
GROUP_NAMES = {
    "model": "architecture",
    "hparams": "hyperparameter cell",
    "aug": "augmentation mode",
    "dates": "training set",
}
PANELS = (
    ("train_loss", "training loss"),
    ("val_loss", "validation loss"),
    ("train_f1", "training F1"),
    ("val_f1", "validation F1"),
)


def _group_label(group_by: str, value: str) -> str:
    if group_by == "model":
        return DISPLAY_NAMES.get(value, value)
    if group_by == "aug":
        return AUG_LABELS.get(value, value)
    if group_by == "dates":
        return "trained on " + value.replace("+", " + ")
    return f"{group_by} {value}"


def _epoch_frame(metrics_files: Sequence[PathLike], group_by: str) -> pd.DataFrame:
    rows = []
    for path in metrics_files:
        data = read_json(path, "run metrics")
        try:
            group, seed = str(data["run"][group_by]), data["run"]["seed"]
            for epoch in data["epochs"]:
                rows.append(
                    {"group": group, "seed": seed, "epoch": int(epoch["epoch"])}
                    | {key: float(epoch[key]) for key, _ in PANELS}
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputDataError(f"run metrics {path}: missing or bad field {exc}") from exc
    if not rows:
        raise InputDataError("no epochs in the given run metrics")
    return pd.DataFrame(rows)


def figure_training_curves(
    metrics_files: Sequence[PathLike],
    out_png: PathLike,
    group_by: str = "model",
    title: str | None = None,
) -> Figure:
    """Loss and F1 per epoch (train, validation), mean over seeds with a min-max band.

    ``metrics_files``: runs' ``metrics.json``; ``group_by``: the run field that
    gives one curve per value (``model`` for Figure 2, ``aug`` for Figure 3,
    ``dates`` for Figure 4); the other fields (seeds) are spread in the band.
    Returns the saved Figure (what it plots can be read back from it).
    """
    frame = _epoch_frame(metrics_files, group_by)
    groups = list(dict.fromkeys(frame["group"]))
    colours = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    # A Figure without pyplot renders with Agg and keeps no global state.
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    band_alpha = 0.2 if len(groups) <= 3 else 0.1  # many overlapping bands turn muddy
    for ax, (key, label) in zip(axes.flat, PANELS, strict=True):
        for i, group in enumerate(groups):
            stats = frame[frame["group"] == group].groupby("epoch")[key].agg(["mean", "min", "max"])
            colour = colours(i % colours.N)
            ax.plot(stats.index, stats["mean"], color=colour, lw=1.8, marker="o", ms=3)
            if (stats["max"] > stats["min"]).any():
                ax.fill_between(
                    stats.index, stats["min"], stats["max"], color=colour, alpha=band_alpha
                )
        ax.set_title(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("F1 (0-1, dimensionless)" if "f1" in key else "loss (dimensionless)")
        ax.grid(alpha=0.3)
        if "f1" in key:
            # zoom on the values, in tenths, within the F1 range
            lo, hi = np.nanmin(frame[key]), np.nanmax(frame[key])
            if np.isfinite(lo) and np.isfinite(hi):
                bottom = max(0.0, np.floor((lo - 0.02) * 10) / 10)
                ax.set_ylim(bottom, min(1.02, np.ceil(hi * 10) / 10 + 0.02))
            ax.set_xlabel("epoch")
    n_seeds = frame.groupby("group")["seed"].nunique()
    handles: list[Artist] = [
        Line2D([], [], color=colours(i % colours.N), lw=2, label=_group_label(group_by, g))
        for i, g in enumerate(groups)
    ]
    band = "band: min-max over seeds" if n_seeds.max() > 1 else "one seed"
    handles.append(Patch(color="grey", alpha=0.3, label=f"line: mean; {band}"))
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False
    )
    seeds = (
        f"{n_seeds.min()}" if n_seeds.min() == n_seeds.max() else f"{n_seeds.min()}-{n_seeds.max()}"
    )
    what = GROUP_NAMES.get(group_by, group_by)
    fig.suptitle(title or f"Training history per {what} ({seeds} seeds per curve)")
    _save(fig, out_png)
    return fig


# ---------------------------------------------------------------- overlays


def _region_window(regions_tif: PathLike, region: str) -> Window:
    if region not in REGION_CODES:
        raise InputDataError(f"unknown region {region!r}; choose one of {', '.join(REGION_CODES)}")
    with rasterio.open(regions_tif) as src:
        inside = src.read(1) == REGION_CODES[region]
    rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    if rows.size == 0:
        raise InputDataError(f"{regions_tif} has no pixel of the {region} region")
    return Window(cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)


def _read(path: PathLike, window: Window, shape: tuple[int, int], bands: list[int] | int = 1):
    with rasterio.open(path) as src:
        return src.read(bands, window=window, out_shape=shape, resampling=Resampling.nearest)


def stretch(rgb: np.ndarray, low: float = 2, high: float = 98) -> np.ndarray:
    """(3, H, W) values to (H, W, 3) in 0..1, each band stretched between its percentiles."""
    out = np.zeros(rgb.shape[1:] + (3,), dtype=np.float32)
    for i, band in enumerate(rgb.astype(np.float32)):
        finite = band[np.isfinite(band)]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, [low, high])
        out[..., i] = np.clip((band - lo) / max(hi - lo, 1e-12), 0, 1)
    out[~np.isfinite(rgb).all(axis=0)] = 1.0  # nodata shown white
    return out


def figure_overlay(
    scene_tif: PathLike,
    probability_tif: PathLike,
    reference_tif: PathLike,
    regions_tif: PathLike,
    out_png: PathLike,
    region: str = "test",
    mask_tif: PathLike | None = None,
    threshold: float = 0.5,
    title: str | None = None,
    validity_tif: PathLike | None = None,
) -> Figure:
    """Figures 5-8: prediction of one date over one region, with the reference outline.

    Left: the glacier probability (``results/maps/{run}/{date}/probability.tif``).
    Right: the RGB image of ``results/scenes/{date}.tif`` (bands blue, green,
    red, nir; 2-98 % stretch) with the predicted glacier as a light orange fill
    and an orange outline: ``mask_tif``
    when given, else probability >= ``threshold``. Both show the outline of
    the reference mask ``results/masks/{date}.tif``; the view is the bounding
    box of ``region`` (``train`` or ``test``) in ``results/regions.tif``, in km
    of the scene's CRS. Pixels that are not valid in ``validity_tif``
    (``results/validity/{date}.tif``; without it, pixels where the scene is
    nodata) are grey in both panels. Returns the saved Figure.
    """
    rasters = [Path(scene_tif), Path(probability_tif), Path(reference_tif), Path(regions_tif)]
    if mask_tif is not None:
        rasters.append(Path(mask_tif))
    if validity_tif is not None:
        rasters.append(Path(validity_tif))
    check_same_grid(rasters)
    window = _region_window(regions_tif, region)
    scale = max(1.0, max(window.height, window.width) / MAX_PIXELS_SIDE)
    shape = (max(1, round(window.height / scale)), max(1, round(window.width / scale)))
    bands = _read(scene_tif, window, shape, [3, 2, 1])
    rgb = stretch(bands)
    if validity_tif is not None:
        unobserved = _read(validity_tif, window, shape) != VALID
    else:
        unobserved = ~np.isfinite(bands).all(axis=0)
    rgb[unobserved] = UNOBSERVED_GREY
    probability = _read(probability_tif, window, shape).astype(np.float32)
    reference = _read(reference_tif, window, shape)
    if mask_tif is not None:
        predicted = _read(mask_tif, window, shape) == 1
        predicted_label = "predicted glacier (mask)"
    else:
        predicted = np.nan_to_num(probability, nan=0.0) >= threshold
        predicted_label = f"predicted glacier (p ≥ {threshold:g})"
    with rasterio.open(scene_tif) as src:
        left, bottom, right, top = rasterio.windows.bounds(window, src.transform)
        crs = src.crs
    extent = (left / 1000, right / 1000, bottom / 1000, top / 1000)

    # Two panels of the crop's aspect ratio, plus room for labels and colour bar.
    panel_height = float(np.clip(5.5 * shape[0] / shape[1], 3.0, 8.0))
    fig = Figure(figsize=(12.5, panel_height + 1.3), layout="constrained")
    axes = fig.subplots(1, 2)
    image = axes[0].imshow(
        np.ma.masked_where(unobserved | ~np.isfinite(probability), probability),
        cmap="magma",
        vmin=0,
        vmax=1,
        extent=extent,
    )
    axes[0].set_facecolor(UNOBSERVED_GREY)
    fig.colorbar(image, ax=axes[0], shrink=0.85, label="glacier probability (0-1)")
    axes[0].set_title("(a) predicted glacier probability")
    axes[1].imshow(rgb, extent=extent)
    # a light fill and an outline leave the image under the prediction readable
    fill = ListedColormap([(0, 0, 0, 0), PREDICTED_FILL])
    axes[1].imshow(
        predicted.astype(np.uint8),
        cmap=fill,
        vmin=0,
        vmax=1,
        extent=extent,
        interpolation="nearest",
    )
    if predicted.any() and not predicted.all():
        axes[1].contour(
            predicted.astype(np.float32),
            levels=[0.5],
            colors=[PREDICTED_LINE],
            linewidths=1.2,
            extent=extent,
            origin="upper",
        )
    axes[1].set_title("(b) predicted glacier over the RGB image")
    outline = np.where(reference == NODATA, 0, reference).astype(np.float32)
    for ax in axes:
        if outline.any() and not outline.all():
            contours = ax.contour(
                outline, levels=[0.5], colors="cyan", linewidths=1.0, extent=extent, origin="upper"
            )
            # a dark halo keeps the outline visible on bright ice and high probability
            contours.set(path_effects=[path_effects.withStroke(linewidth=2.2, foreground="black")])
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        map_axes(ax, crs)
    handles = [
        Patch(facecolor=PREDICTED_FILL, edgecolor=PREDICTED_LINE, label=predicted_label),
        Line2D(
            [],
            [],
            color="cyan",
            lw=1.5,
            label="reference outline",
            path_effects=[path_effects.withStroke(linewidth=2.7, foreground="black")],
        ),
    ]
    if unobserved.any():
        share = f"{unobserved.mean():.0%}"
        label = f"not observed ({share}: cloud, shadow, no data)"
        handles.append(Patch(facecolor=UNOBSERVED_GREY, label=label))
    axes[1].legend(handles=handles, loc="lower right", framealpha=0.85)
    fig.suptitle(title or f"{region} region, {Path(scene_tif).stem}")
    _save(fig, out_png)
    return fig


def _save(fig: Figure, out_png: PathLike) -> None:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    log.info("wrote %s", out_png)
