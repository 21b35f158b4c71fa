"""The axes of every map figure: eastings and northings in km with the CRS's EPSG
code, and a scale bar, so that maps of one scene read alike (overlays, the
change figure)."""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from rasterio.crs import CRS


def crs_label(crs: CRS | None) -> str:
    """``EPSG:<code>`` where the CRS has one, else its own description."""
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def nice_length(span: float) -> float:
    """A round length (1, 2 or 5 times a power of ten) of about a fifth of ``span``."""
    target = span / 5
    power = 10 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target)


def map_axes(axes: Axes, crs: CRS | None, *, data_units_per_km: float = 1.0) -> None:
    """Label ``axes`` as easting/northing in km of ``crs`` and add a scale bar.

    ``data_units_per_km``: 1000 when the data are plotted in metres (the ticks
    are then written in km, without an offset), 1 when already in km. Call it
    after the limits are set. The scale bar sits just above the map's top left
    corner, so that it hides no pixel of the map.
    """
    unit = f"km, {crs_label(crs)}"
    if data_units_per_km != 1.0:
        formatter = FuncFormatter(lambda value, _: f"{value / data_units_per_km:g}")
        axes.xaxis.set_major_formatter(formatter)
        axes.yaxis.set_major_formatter(formatter)
    axes.set_xlabel(f"easting ({unit})")
    axes.set_ylabel(f"northing ({unit})")
    left, right = axes.get_xlim()
    bottom, top = axes.get_ylim()
    km = nice_length(abs(right - left) / data_units_per_km)
    bar = AnchoredSizeBar(
        axes.transData,
        km * data_units_per_km,
        f"{km:g} km",
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        bbox_transform=axes.transAxes,
        pad=0.1,
        borderpad=0.1,
        sep=2,
        frameon=False,
        size_vertical=abs(top - bottom) * 0.012,
        fontproperties={"size": 8},
    )
    axes.add_artist(bar)
