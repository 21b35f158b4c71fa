"""The one definition of each map layer a glacier map is made of (mask,
probability, uncertainty): data type, nodata, overview resampling, band
description, units, the mask's colour table and class names, and the QGIS
style (``.qml``) written next to it, so that every writer (runs, seed
ensembles, the threshold baseline) produces the same files and QGIS shows the
mask as classes and the probability as a colour ramp at once.

GDAL keeps a colour table inside the GeoTIFF (``gdalinfo`` lists it), but
category names only in a ``.aux.xml`` sidecar (and rasterio cannot set them),
so the class names go into the band's metadata (``CLASS_<value>``) and the
style's legend.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from glaciermap.labels import GLACIER, NODATA, NOT_GLACIER
from glaciermap.utils.atomic import atomic_path

LayerName = Literal["mask", "probability", "uncertainty"]
Colour = tuple[int, int, int, int]  # r, g, b, alpha (a GeoTIFF palette keeps no alpha: 255)
GLACIER_COLOUR: Colour = (64, 160, 255, 255)


@dataclass(frozen=True)
class MapLayer:
    """How one layer of a glacier map is written and styled."""

    name: LayerName
    dtype: str
    nodata: float | int
    resampling: str  # of the COG's overviews
    units: str
    colours: Mapping[int, Colour] = field(default_factory=dict)  # a paletted layer's table
    transparent: tuple[int, ...] = ()  # values the style draws transparent
    classes: Mapping[int, str] = field(default_factory=dict)
    ramp: tuple[tuple[float, str], ...] = ()  # (value, #rrggbb) of a continuous layer

    def tags(self) -> dict[str, str]:
        """Band metadata: the class name of each value."""
        return {f"CLASS_{value}": name for value, name in self.classes.items()}


MASK = MapLayer(
    "mask",
    "uint8",
    NODATA,
    "nearest",
    "",
    colours={NOT_GLACIER: (0, 0, 0, 255), GLACIER: GLACIER_COLOUR, NODATA: (128, 128, 128, 255)},
    transparent=(NOT_GLACIER,),  # QGIS shows the image below where there is no glacier
    classes={NOT_GLACIER: "not glacier", GLACIER: "glacier", NODATA: "nodata"},
)
PROBABILITY = MapLayer(
    "probability",
    "float32",
    float("nan"),
    "average",
    "1",  # a probability: dimensionless, 0 to 1
    ramp=((0.0, "#f7fbff"), (0.5, "#6baed6"), (1.0, "#08306b")),
)
UNCERTAINTY = MapLayer(
    "uncertainty",
    "float32",
    float("nan"),
    "average",
    "1",  # a standard deviation of probabilities: dimensionless, 0 to 0.5
    ramp=((0.0, "#ffffcc"), (0.2, "#fd8d3c"), (0.5, "#800026")),
)
LAYERS: dict[str, MapLayer] = {layer.name: layer for layer in (MASK, PROBABILITY, UNCERTAINTY)}


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


def qml(layer: MapLayer) -> str:
    """A QGIS raster style for ``layer``: a palette with class names for the mask,
    an interpolated colour ramp for probability and uncertainty."""
    root = ET.Element("qgis", version="3.28", styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    if layer.colours:
        renderer = ET.SubElement(
            pipe, "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1"
        )
        palette = ET.SubElement(renderer, "colorPalette")
        for value, colour in layer.colours.items():
            if value == layer.nodata:
                continue  # nodata is transparent in QGIS
            ET.SubElement(
                palette,
                "paletteEntry",
                value=str(value),
                color=_hex(colour),
                alpha="0" if value in layer.transparent else str(colour[3]),
                label=layer.classes[value],
            )
    else:
        low, high = layer.ramp[0][0], layer.ramp[-1][0]
        renderer = ET.SubElement(
            pipe,
            "rasterrenderer",
            type="singlebandpseudocolor",
            band="1",
            opacity="1",
            alphaBand="-1",
            classificationMin=str(low),
            classificationMax=str(high),
        )
        shader = ET.SubElement(renderer, "rastershader")
        ramp = ET.SubElement(
            shader,
            "colorrampshader",
            colorRampType="INTERPOLATED",
            classificationMode="1",
            clip="0",
            minimumValue=str(low),
            maximumValue=str(high),
        )
        for stop, hex_colour in layer.ramp:
            ET.SubElement(
                ramp, "item", value=str(stop), color=hex_colour, alpha="255", label=str(stop)
            )
    ET.indent(root)
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        + ET.tostring(root, encoding="unicode")
        + "\n"
    )


def write_style(layer: LayerName, path: str | Path) -> None:
    """Write the QGIS style of ``layer`` to ``path`` (QGIS loads ``map.qml`` with ``map.tif``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(qml(LAYERS[layer]))


def write_styles(folder: str | Path, layers: tuple[LayerName, ...]) -> None:
    """``{layer}.qml`` in ``folder`` for each of ``layers`` (maps named ``{layer}.tif``)."""
    for layer in layers:
        write_style(layer, Path(folder) / f"{layer}.qml")
