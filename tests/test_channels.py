"""Configurable input channels: 20 m SWIR beside 10 m bands, a DEM in another CRS,
indices, and a model of eight channels through training and ``predict``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_transform
from sentinel2_products import OFFSET, reflectance, write_product

from glaciermap.channels import (
    FIXED_RANGES,
    check_channels,
    normalized_difference,
    spectral_bands,
)
from glaciermap.config import check_config, validate_config
from glaciermap.data.normalization import ArrayBands, band_stats, scene_range
from glaciermap.data.prepare import prepare_scene, scene_input_files
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import ConfigError
from glaciermap.io.grid import Grid
from glaciermap.io.scenes import read_prepared_channels
from glaciermap.io.terrain import slope_degrees

SIDE = 64  # 10 m pixels; the 20 m bands have SIDE / 2
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 3100000.0)
CRS = "EPSG:32645"
EIGHT = ["blue", "green", "red", "nir", "swir16", "swir22", "elevation", "slope"]
# The DEM: a plane z = Z0 + GX * (easting - E0) + GY * (northing - N0) in metres.
Z0, GX, GY = 2000.0, 0.2, 0.1
E0, N0 = 500000.0, 3100000.0
DEM_NODATA = -9999.0


def green(row: np.ndarray | int) -> np.ndarray:
    """Reflectance of the green band at 10 m row ``row`` (a ramp: no band is constant,
    which a scene may not be)."""
    return 0.3 + 0.005 * np.asarray(row)


def plane(easting: np.ndarray, northing: np.ndarray) -> np.ndarray:
    return Z0 + GX * (easting - E0) + GY * (northing - N0)


def swir16_20m(col: np.ndarray) -> np.ndarray:
    """Reflectance of the 20 m B11 at 20 m column ``col``: a ramp along the columns."""
    return 0.1 + 0.01 * col


def swir22_20m(col: np.ndarray) -> np.ndarray:
    """Reflectance of the 20 m B12 at 20 m column ``col``: another ramp."""
    return 0.05 + 0.002 * col


def write_dem(path: Path) -> None:
    """The plane sampled on a lon/lat grid of about 10 m covering the scene (with a
    margin), nodata over the scene's north-west corner."""
    lons, lats = warp_transform(CRS, "EPSG:4326", [E0 - 200, E0 + 840], [N0 + 200, N0 - 840])
    step = 0.0001
    west, north = lons[0], lats[0]
    width, height = math.ceil((lons[1] - west) / step), math.ceil((north - lats[1]) / step)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    lon, lat = west + cols * step, north - rows * step
    east, northing = warp_transform("EPSG:4326", CRS, lon.ravel(), lat.ravel())
    z = plane(np.array(east), np.array(northing)).reshape(height, width).astype(np.float32)
    corner_lon, corner_lat = warp_transform(CRS, "EPSG:4326", [E0 + 100], [N0 - 100])
    z[lat > corner_lat[0]] = np.where(
        lon[lat > corner_lat[0]] < corner_lon[0], DEM_NODATA, z[lat > corner_lat[0]]
    )
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": Affine(step, 0, west, 0, -step, north),
        "nodata": DEM_NODATA,
    }
    with rasterio.open(path, "w", **profile) as out:
        out.write(z, 1)


def data_config(base: Path, channels: list[str]) -> dict:
    rng = np.random.default_rng(0)
    dn = (rng.uniform(0.05, 0.5, (4, SIDE, SIDE)) * 10000 + OFFSET).astype(np.uint16)
    rows = np.arange(SIDE)[:, None]
    dn[1] = np.round(np.broadcast_to(green(rows), (SIDE, SIDE)) * 10000 + OFFSET)
    cols = np.broadcast_to(np.arange(SIDE // 2), (SIDE // 2, SIDE // 2))
    dn_20m = {
        "swir16": np.round(swir16_20m(cols) * 10000 + OFFSET).astype(np.uint16),
        "swir22": np.round(swir22_20m(cols) * 10000 + OFFSET).astype(np.uint16),
    }
    scl = np.full((SIDE // 2, SIDE // 2), 5, np.uint8)
    entry = write_product(base, "45RVL", "20230801", dn, scl, TRANSFORM, CRS, dn_20m)
    write_dem(base / "dem.tif")
    scene = {"acquired": "2023-08-01", "product": "sentinel2_l2a", **entry}
    return {
        "scenes": {"aug": scene},
        "channels": channels,
        "dem": {"file": "dem.tif"},
        "outlines": {"file": "outlines.gpkg"},
        "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [0, 0, 1, 1]}},
    }, dn


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("s2")
    data, dn = data_config(base, EIGHT)
    out = base / "results" / "scenes" / "aug.tif"
    prepare_scene(data, "aug", out, base / "results" / "validity" / "aug.tif", base)
    values, grid, channels = read_prepared_channels(out)
    return {
        "base": base,
        "data": data,
        "dn": dn,
        "scene": out,
        "values": values,
        "grid": grid,
        "channels": channels,
    }


def test_prepared_scene_holds_eight_channels_on_the_10m_grid(prepared):
    values, grid = prepared["values"], prepared["grid"]
    assert prepared["channels"] == tuple(EIGHT)
    assert values.shape == (8, SIDE, SIDE)
    assert grid.transform == TRANSFORM and grid.crs.to_string() == CRS
    # 10 m bands: the L2A offset applied, copied pixel for pixel (outside the DEM's gap).
    expected = reflectance(prepared["dn"])
    assert np.array_equal(values[:4, 40:, :], expected[:, 40:, :])


def test_20m_bands_are_resampled_bilinearly_with_the_offset(prepared):
    swir16 = prepared["values"][EIGHT.index("swir16")]
    # 10 m column j lies at 20 m column j / 2 - 1/4: the ramp, interpolated.
    cols = np.arange(2, SIDE - 2)
    assert np.allclose(swir16[40, cols], swir16_20m(cols / 2 - 0.25), atol=1e-6)
    swir22 = prepared["values"][EIGHT.index("swir22")]
    assert np.allclose(swir22[40, cols], swir22_20m(cols / 2 - 0.25), atol=1e-6)


def test_elevation_and_slope_come_from_the_dem_in_another_crs(prepared):
    values, grid = prepared["values"], prepared["grid"]
    rows, cols = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    east, north = grid.transform @ (cols, rows)
    elevation = values[EIGHT.index("elevation")]
    inner = (slice(20, SIDE - 2), slice(20, SIDE - 2))
    assert np.allclose(elevation[inner], plane(east, north)[inner], atol=0.5)
    expected_slope = math.degrees(math.atan(math.hypot(GX, GY)))
    assert np.allclose(values[EIGHT.index("slope")][inner], expected_slope, atol=0.1)


def test_dem_nodata_stays_nodata(prepared):
    values = prepared["values"]
    assert np.isnan(values[:, :8, :8]).all()  # under the DEM's gap: nodata in every channel
    assert np.isfinite(values[:, 40:, 40:]).all()


def test_ndsi_of_known_reflectances(tmp_path):
    data, _ = data_config(tmp_path, ["green", "ndsi"])
    out = tmp_path / "ndsi.tif"
    prepare_scene(data, "aug", out, tmp_path / "validity.tif", tmp_path)
    values, _, channels = read_prepared_channels(out)
    assert channels == ("green", "ndsi")
    swir = swir16_20m(np.arange(2, SIDE - 2) / 2 - 0.25)
    assert np.allclose(
        values[1, 30, 2 : SIDE - 2], (green(30) - swir) / (green(30) + swir), atol=1e-5
    )
    # The DEM is not read when no channel needs it.
    assert not any(f.endswith("dem.tif") for f in scene_input_files(data, "aug"))


def test_slope_on_a_geographic_grid_uses_metres():
    # 0.001 degree pixels at 45 degrees north; z rises 1 m per metre northwards.
    grid = Grid(rasterio.crs.CRS.from_epsg(4326), Affine(0.001, 0, 10, 0, -0.001, 45.01), 5, 5)
    metres_per_row = 0.001 * math.pi / 180 * 6_371_008.8
    z = np.repeat((-np.arange(5) * metres_per_row)[:, None], 5, axis=1)
    assert np.allclose(slope_degrees(z, grid), 45.0, atol=1e-4)


def test_normalized_difference_is_bounded_and_keeps_nodata():
    a = np.array([0.6, 0.0, np.nan, 0.3])
    b = np.array([0.2, 0.0, 0.1, -0.5])  # negative reflectance: clipped to [-1, 1]
    assert np.allclose(normalized_difference(a, b), [0.5, 0.0, np.nan, -1.0], equal_nan=True)


def test_channel_lists_are_checked():
    assert spectral_bands(["blue", "ndsi", "elevation"]) == ("blue", "green", "swir16")
    with pytest.raises(ValueError, match="list them as blue, nir"):
        check_channels(["nir", "blue"])
    with pytest.raises(ValueError, match="spectral band or index"):
        check_channels(["elevation", "slope"])


def test_a_missing_band_or_dem_is_a_config_error_naming_it(tmp_path):
    data, _ = data_config(tmp_path, ["blue", "green", "red", "nir", "swir16", "swir22"])
    del data["scenes"]["aug"]["bands"]["swir22"]
    config = validate_config({"data": data, "seeds": [0]})
    (tmp_path / "outlines.gpkg").write_text("")
    with pytest.raises(ConfigError, match=r"'data\.scenes\.aug\.bands': no swir22 band"):
        check_config(config, tmp_path)
    data, _ = data_config(tmp_path, ["blue", "slope"])
    del data["dem"]
    with pytest.raises(ConfigError, match=r"'data\.dem': channel\(s\) slope"):
        check_config(validate_config({"data": data, "seeds": [0]}), tmp_path)


def test_terrain_and_indices_have_a_fixed_scaling(prepared):
    values = np.nan_to_num(prepared["values"])
    ranges = scene_range(ArrayBands(values), channels=EIGHT)
    assert ranges[EIGHT.index("elevation")].tolist() == list(FIXED_RANGES["elevation"])
    assert ranges[EIGHT.index("slope")].tolist() == list(FIXED_RANGES["slope"])
    stats = band_stats(values[None], np.ones((1, SIDE, SIDE), bool), EIGHT)
    assert stats["bands"] == EIGHT
    assert (
        stats["mean"][EIGHT.index("slope")] == 45.0 and stats["std"][EIGHT.index("slope")] == 45.0
    )
    # The spectral bands keep the data's statistics.
    assert stats["mean"][1] == pytest.approx(float(values[1].mean()), rel=1e-6)


def _tiles(values: np.ndarray, path: Path, channels: list[str]) -> Path:
    """Tiles of 32 px from a prepared scene, glacier where slope is below the median."""
    size = 32
    slope = values[channels.index("slope")] if "slope" in channels else values[0]
    labels = (slope < np.nanmedian(slope)).astype(np.uint8)
    windows = np.array([[r, c, size, size] for r in (0, 32) for c in (0, 32)])
    images = np.stack(
        [np.nan_to_num(values[:, r : r + size, c : c + size]) for r, c, *_ in windows]
    )
    masks = np.stack([labels[r : r + size, c : c + size] for r, c, *_ in windows])
    ranges = scene_range(ArrayBands(values), channels=channels)
    transform = np.array(tuple(TRANSFORM)[:6])
    TileSet(images, masks, windows, CRS, transform, ranges).save(path)
    stats = band_stats(images, np.ones(masks.shape, bool), channels)
    (path.parent / "stats.json").write_text(json.dumps(stats))
    return path


def test_an_eight_channel_model_trains_predicts_and_refuses_a_four_band_scene(
    prepared, tmp_path, geotiff, capsys
):
    import torch

    from glaciermap.cli import main
    from glaciermap.runs import HParams
    from glaciermap.training.run import train_run
    from glaciermap.training.settings import RunSettings

    torch.set_num_threads(1)
    train = _tiles(prepared["values"], tmp_path / "tiles" / "train.npz", EIGHT)
    settings = RunSettings(
        model="pspnet",
        hparams=HParams(0.2, "sigmoid", "mean"),
        dates=("aug",),
        aug="aug-online",
        seed=0,
        epochs=1,
        batch_size=2,
        encoder="resnet18",
        encoder_weights=None,
        device="cpu",
        threads=1,
    )
    run = tmp_path / "run"
    train_run(settings, [train], [train], [train.parent / "stats.json"], run)
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["bands"] == EIGHT and best["spec"]["in_channels"] == 8

    out = tmp_path / "maps"
    args = ["predict", "--checkpoint", str(run / "best.pt"), "--scene", str(prepared["scene"])]
    assert main([*args, "--out", str(out), "--device", "cpu"]) == 0
    with rasterio.open(out / "probability.tif") as dataset:
        assert dataset.transform == TRANSFORM and dataset.shape == (SIDE, SIDE)
        probability = dataset.read(1)
    assert np.isfinite(probability[40:, 40:]).all()

    four = geotiff(
        tmp_path / "four.tif",
        prepared["values"][:4],
        crs=CRS,
        transform=TRANSFORM,
        nodata=np.nan,
        descriptions=EIGHT[:4],
    )
    args = ["predict", "--checkpoint", str(run / "best.pt"), "--scene", str(four)]
    assert main([*args, "--out", str(tmp_path / "no"), "--device", "cpu"]) == 1
    assert "no swir16, swir22, elevation, slope band" in capsys.readouterr().err
    assert not (tmp_path / "no" / "mask.tif").exists()


SIX = ["blue", "green", "red", "nir", "swir16", "swir22"]


def test_chips_with_six_bands_train_and_are_scored(tmp_path):
    import torch
    from chipdata import ChipSpec, chip_arrays, dataset_block, site, write_raster

    from glaciermap.data.chip_dataset import ChipDataset, image_files
    from glaciermap.data.chips import prepare_chips
    from glaciermap.evaluation.chips import evaluate_chips_checkpoints
    from glaciermap.runs import HParams
    from glaciermap.training.run import train_run
    from glaciermap.training.settings import RunSettings

    torch.set_num_threads(1)
    root = tmp_path / "chips"
    for i in range(6):
        spec = ChipSpec(f"c{i}", *site(i), seed=i)
        dn, mask = chip_arrays(spec)
        swir = np.where(mask == 1, 300, 2500).astype(np.uint16)  # ice dark in SWIR
        swir[:, :2] = 0
        six = np.concatenate([dn, swir[None], swir[None] // 2])
        write_raster(root / "masks" / f"c{i}.tif", mask, spec.grid())
        write_raster(root / "images" / f"c{i}.tif", six, spec.grid(), nodata=0)
    block = dataset_block(root, split="train_val")
    block["bands"] = {**block["bands"], "swir16": 5, "swir22": 6}
    block["validation"] = {"fraction": 0.34, "block_m": 1000}
    images = image_files(ChipDataset.from_config("alps", block, SIX))
    names = {"stats": "stats.json", "inventory": "chips.csv"}
    out = {n: tmp_path / "out" / names.get(n, f"{n}.npz") for n in (*names, "train", "val", "test")}
    prepare_chips(block, "alps", images, {"size": 32, "stride": 16}, out, channels=SIX)
    train = TileSet.load(out["train"])
    assert train.images.shape[1] == 6 and train.ranges.shape[1:] == (6, 2)
    assert json.loads(out["stats"].read_text())["bands"] == SIX

    settings = RunSettings(
        model="pspnet",
        hparams=HParams(0.2, "sigmoid", "mean"),
        dates=("alps",),
        aug="aug-online",
        seed=0,
        epochs=1,
        batch_size=4,
        encoder="resnet18",
        encoder_weights=None,
        device="cpu",
        threads=1,
    )
    metrics = train_run(settings, [out["train"]], [out["val"]], [out["stats"]], tmp_path / "run")
    assert metrics["n_train_tiles"] == len(train)
    checkpoint = tmp_path / "run" / "best.pt"
    assert torch.load(checkpoint, weights_only=True)["bands"] == SIX

    test_block = {**block, "split": "test"}
    result = evaluate_chips_checkpoints(
        [checkpoint], test_block, "alps", images, tmp_path / "e.json", tmp_path / "e.csv", "run",
        device="cpu",
    )  # fmt: skip
    assert result["n_chips"] == 6 and result["pooled"]["n_pixels"] > 0
    # A dataset that lacks a band the channels need is refused naming it.
    del block["bands"]["swir22"]
    with pytest.raises(ConfigError, match="no swir22 band"):
        ChipDataset.from_config("alps", block, SIX)


def test_chip_terrain_comes_from_the_dem_on_the_chip_grid(tmp_path):
    from chipdata import ChipSpec, chip_arrays, dataset_block, site, write_raster

    from glaciermap.data.chip_dataset import ChipDataset, ChipFiles
    from glaciermap.data.chips import read_chip

    spec = ChipSpec("c0", *site(0))  # UTM 32N; the DEM is in lon/lat
    dn, mask = chip_arrays(spec)
    root = tmp_path / "chips"
    image = write_raster(root / "images" / "c0.tif", dn, spec.grid(), nodata=0)
    write_raster(root / "masks" / "c0.tif", mask, spec.grid())
    lon, lat = site(0)
    step = 0.0001
    west, north = lon - 0.01, lat + 0.01
    z = 1000 + 5000 * (north - (np.arange(200) + 0.5) * step)[:, None] * np.ones(200)
    profile = {
        "driver": "GTiff", "width": 200, "height": 200, "count": 1, "dtype": "float32",
        "crs": "EPSG:4326", "transform": Affine(step, 0, west, 0, -step, north),
    }  # fmt: skip
    with rasterio.open(tmp_path / "dem.tif", "w", **profile) as out:
        out.write(z.astype(np.float32), 1)
    dem = {"file": str(tmp_path / "dem.tif")}
    dataset = ChipDataset.from_config("alps", dataset_block(root), ["blue", "elevation"], dem)
    chip = read_chip(dataset, ChipFiles(image, root / "masks" / "c0.tif"))
    assert chip.bands.shape == (2, *spec.shape)
    grid = spec.grid()
    rows, cols = np.mgrid[0 : spec.shape[0], 0 : spec.shape[1]] + 0.5
    east, northing = grid.transform @ (cols, rows)
    _, lats = warp_transform(grid.crs, "EPSG:4326", east.ravel(), northing.ravel())
    expected = (1000 + 5000 * np.array(lats)).reshape(spec.shape)
    valid = np.isfinite(chip.bands).all(axis=0)
    assert valid[:, 2:].all()  # the chips' nodata columns stay nodata
    assert np.allclose(chip.bands[1][valid], expected[valid], atol=0.05)
    with pytest.raises(ConfigError, match="need a DEM"):
        ChipDataset.from_config("alps", dataset_block(root), ["blue", "elevation"])


def test_predict_computes_an_index_the_scene_lacks_from_its_bands(tmp_path, geotiff):
    from rasterio.windows import Window

    from glaciermap.errors import InputDataError
    from glaciermap.inference.scene import BandRef, SceneBands

    values = np.random.default_rng(0).uniform(0.05, 0.9, (3, 8, 8)).astype(np.float32)
    scene = geotiff(tmp_path / "s.tif", values, descriptions=["green", "nir", "swir16"])
    refs = {name: BandRef(scene, i) for i, name in enumerate(["green", "nir", "swir16"], 1)}
    with SceneBands(refs, ["green", "ndsi", "ndwi"]) as source:
        read = source.read(Window(0, 0, 8, 8))
    assert np.array_equal(read[0], values[0])
    assert np.allclose(read[1], (values[0] - values[2]) / (values[0] + values[2]), atol=1e-6)
    assert np.allclose(read[2], (values[0] - values[1]) / (values[0] + values[1]), atol=1e-6)
    with pytest.raises(InputDataError, match="no ndvi band"):
        SceneBands(refs, ["green", "ndvi"])  # ndvi needs red


def test_jitter_acts_on_spectral_channels_only_and_pictures_stay_rgb():
    import torch

    from glaciermap.training.augmentation import color_jitter
    from glaciermap.training.board import rgb_display

    channels = ["blue", "green", "red", "nir", "swir16", "elevation", "slope", "ndsi"]
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, len(channels), 16, 16, generator=generator) + 0.1
    images[:, 7] -= 0.6  # an index may be negative: it is not clamped
    jitter = {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.1}
    out = color_jitter(images, jitter, generator, channels)
    assert torch.equal(out[:, 5:], images[:, 5:])
    assert not torch.allclose(out[:, 4], images[:, 4])  # SWIR is jittered with the bands
    # Brightness and contrast map SWIR linearly per tile (no saturation/hue outside RGB).
    for tile in range(4):
        x, y = images[tile, 4].flatten(), out[tile, 4].flatten()
        kept = y > 0  # not clamped at 0
        x, y = x[kept], y[kept]
        slope = (y[1] - y[0]) / (x[1] - x[0])
        assert torch.allclose(y, y[0] + slope * (x - x[0]), atol=1e-5)
    # The picture is red, green, blue wherever they are among the channels.
    shown = rgb_display(images, channels)
    assert torch.equal(shown, rgb_display(images[:, [2, 1, 0]], ["red", "green", "blue"]))
    assert torch.equal(shown, rgb_display(images[:, :4]))


def test_ensemble_members_must_share_their_channels(tmp_path):
    import torch

    from glaciermap.errors import InputDataError
    from glaciermap.models.checkpoint import save_prediction_checkpoint
    from glaciermap.models.ensemble import CheckpointEnsemble
    from glaciermap.models.registry import build_model
    from glaciermap.models.spec import ModelSpec
    from glaciermap.runs import HParams

    torch.manual_seed(0)
    paths = []
    for channels in (EIGHT[:4], SIX):
        n = len(channels)
        spec = ModelSpec("pspnet", HParams(0.2, "sigmoid", "mean"), "resnet18", in_channels=n)
        path = tmp_path / f"{n}.pt"
        normalization = {"mean": [0.0] * n, "std": [1.0] * n}
        save_prediction_checkpoint(path, build_model(spec), spec, normalization, 32, 0.5, channels)
        paths.append(path)
    assert CheckpointEnsemble([paths[1]], "cpu").bands == SIX
    with pytest.raises(InputDataError, match=r"6\.pt: band layout \['blue'.*'swir22'\] differs"):
        CheckpointEnsemble(paths, "cpu")
    with pytest.raises(ValueError, match="6 input channels for bands"):
        save_prediction_checkpoint(
            tmp_path / "x.pt", build_model(spec), spec, normalization, 32, 0.5, EIGHT[:4]
        )


def test_the_schema_spells_the_vocabulary_of_glaciermap_channels():
    from glaciermap.channels import CHANNELS, DEFAULT_CHANNELS, SPECTRAL
    from glaciermap.schema import load_schema

    schema = load_schema()
    channels = schema["properties"]["data"]["properties"]["channels"]
    assert tuple(channels["items"]["enum"]) == CHANNELS
    assert tuple(channels["default"]) == DEFAULT_CHANNELS
    assert tuple(schema["$defs"]["bands"]["properties"]) == SPECTRAL
    chip_bands = schema["$defs"]["chip_dataset"]["properties"]["bands"]["properties"]
    assert tuple(chip_bands) == SPECTRAL
    assets = schema["properties"]["acquire"]["properties"]["assets"]["properties"]
    assert set(assets) == {*SPECTRAL, "scl"}
