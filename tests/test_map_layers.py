"""Glacier maps read in QGIS at a glance: one mask profile for model and baseline
masks (COG, colour table, class names), units on probability and uncertainty,
and QGIS styles next to the maps."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import rasterio
from rasterio.transform import from_origin

from glaciermap.evaluation.baseline import FORMAT, predict_baseline
from glaciermap.inference.geotiff import cog_writer
from glaciermap.io.map_layers import GLACIER_COLOUR, MASK, PROBABILITY, UNCERTAINTY, write_style

TRANSFORM = from_origin(480000, 3100000, 30, 30)


def test_the_baseline_mask_is_a_cog_with_the_masks_colour_table(tmp_path, geotiff):
    bands = np.random.default_rng(0).uniform(0, 1, (4, 40, 30)).astype(np.float32)
    scene = geotiff(
        tmp_path / "scene.tif",
        bands,
        crs="EPSG:32645",
        transform=TRANSFORM,
        nodata=np.nan,
        descriptions=("blue", "green", "red", "nir"),
    )
    rules = tmp_path / "rules.json"
    rule = {"feature": "red", "direction": ">=", "threshold": 0.5}
    rules.write_text(json.dumps({"format": FORMAT, "rules": [rule]}))
    predict_baseline(rules, scene, tmp_path / "mask.tif", block_rows=7)
    with rasterio.open(tmp_path / "mask.tif") as mask:
        assert mask.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert mask.colormap(1)[1] == GLACIER_COLOUR and mask.colormap(1)[0] == (0, 0, 0, 255)
        assert mask.tags(1) | {} == {"CLASS_0": "not glacier", "CLASS_1": "glacier",
                                     "CLASS_255": "nodata"}  # fmt: skip
        assert mask.nodata == 255 and mask.crs.to_epsg() == 32645
        assert np.array_equal(mask.read(1), (bands[2] >= 0.5).astype(np.uint8))


def test_probability_and_uncertainty_carry_units_and_no_colour_table(tmp_path):
    for layer in (PROBABILITY, UNCERTAINTY):
        path = tmp_path / f"{layer.name}.tif"
        with cog_writer(
            path,
            height=20,
            width=20,
            dtype=layer.dtype,
            nodata=layer.nodata,
            crs=rasterio.crs.CRS.from_epsg(32645),
            transform=TRANSFORM,
            descriptions=(f"glacier {layer.name}",),
            layer=layer,
        ) as dataset:
            dataset.write(np.full((20, 20), 0.25, np.float32), 1)
        with rasterio.open(path) as dataset:
            assert dataset.units == ("1",) and dataset.descriptions == (f"glacier {layer.name}",)
            assert dataset.read(1).mean() == np.float32(0.25)


def test_styles_are_qgis_palettes_and_ramps(tmp_path):
    write_style("mask", tmp_path / "mask.qml")
    write_style("probability", tmp_path / "probability.qml")
    mask = ET.parse(tmp_path / "mask.qml").getroot()
    assert mask.tag == "qgis"
    renderer = mask.find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "paletted"
    entries = {e.get("value"): e.attrib for e in renderer.iter("paletteEntry")}
    assert set(entries) == {"0", "1"}  # nodata is QGIS's own transparency
    assert entries["1"]["label"] == MASK.classes[1] and entries["1"]["color"] == "#40a0ff"
    assert entries["0"]["alpha"] == "0"  # the image shows where there is no glacier
    ramp = ET.parse(tmp_path / "probability.qml").getroot().find(".//colorrampshader")
    assert ramp is not None
    assert (ramp.get("minimumValue"), ramp.get("maximumValue")) == ("0.0", "1.0")
    assert len(list(ramp.iter("item"))) == len(PROBABILITY.ramp)
