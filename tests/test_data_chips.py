"""Chip datasets: reading chips, refusing bad ones, tiles with their own georeference,
padding, statistics from training chips only, and the split by ground."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from chipdata import (
    IGNORE,
    NODATA_COLUMNS,
    SCALE,
    ChipSpec,
    chip_arrays,
    dataset_block,
    site,
    write_chip,
    write_raster,
)
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from glaciermap.config import check_config, validate_config
from glaciermap.data.chip_dataset import ChipDataset, ChipFiles, image_files
from glaciermap.data.chips import prepare_chips as _prepare_chips
from glaciermap.data.chips import read_chip
from glaciermap.data.tilestore import TileSet
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.labels import GLACIER, NODATA, NOT_GLACIER

TILES = {"size": 32, "stride": 32, "max_nodata_fraction": 0.5}
OUTPUTS = ("train", "val", "test", "stats", "inventory")


def outputs(out: Path) -> dict[str, Path]:
    names = {"stats": "stats.json", "inventory": "chips.csv"}
    return {name: out / names.get(name, f"{name}.npz") for name in OUTPUTS}


def prepare(block: dict, root: Path, tiles: dict = TILES, label: str = "alps") -> dict[str, Path]:
    """Run the rule's function on a dataset block, as the job does (its images globbed)."""
    images = image_files(ChipDataset.from_config(label, block))
    out = outputs(root / "out")
    _prepare_chips(block, label, images, tiles, out)
    return out


def inventory(out: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(out["inventory"], keep_default_na=False)


# ---------------------------------------------------------------- one chip


def test_a_chip_becomes_reflectance_with_nodata_and_labels_with_ignore(tmp_path):
    spec = ChipSpec("c1", *site(0), shape=(40, 36))
    image = write_chip(tmp_path, spec)
    dn, mask = chip_arrays(spec)
    dataset = ChipDataset.from_config("alps", dataset_block(tmp_path))
    chip = read_chip(dataset, ChipFiles(image, tmp_path / "masks/c1.tif"))
    assert chip.bands.dtype == np.float32 and chip.bands.shape == (4, 40, 36)
    valid = dn[0] != 0
    np.testing.assert_allclose(chip.bands[:, valid], dn[:, valid] * SCALE, rtol=1e-6)
    assert np.isnan(chip.bands[:, :, :NODATA_COLUMNS]).all()
    expected = np.where(mask == IGNORE, NODATA, mask)
    expected[:, :NODATA_COLUMNS] = NODATA
    np.testing.assert_array_equal(chip.labels, expected)
    assert chip.grid.crs.to_epsg() == 32632


def test_mask_values_glacier_and_ignore_are_configurable(tmp_path):
    spec = ChipSpec("c1", *site(0))
    image = write_chip(tmp_path, spec)
    grid = spec.grid()
    classes = np.zeros(spec.shape, np.uint8)
    classes[10:20] = 2  # debris-covered glacier
    classes[20:30] = 1  # clean ice
    classes[30:35] = 9  # "cloud": no label
    write_raster(tmp_path / "masks/c1.tif", classes, grid, nodata=7)
    classes[35:, 20:] = 7  # the mask's own nodata
    write_raster(tmp_path / "masks/c1.tif", classes, grid, nodata=7)
    block = dataset_block(tmp_path, glacier=[1, 2], ignore=9)
    chip = read_chip(
        ChipDataset.from_config("alps", block), ChipFiles(image, tmp_path / "masks/c1.tif")
    )
    labels = chip.labels[:, NODATA_COLUMNS:]
    assert (labels[10:30] == GLACIER).all()
    assert (labels[30:35] == NODATA).all() and (labels[35:, 20 - NODATA_COLUMNS :] == NODATA).all()
    assert (labels[:10] == NOT_GLACIER).all()


def test_outlines_are_rasterised_onto_each_chip_in_its_own_crs(tmp_path):
    lon, lat = site(3)
    specs = [ChipSpec("utm", lon, lat), ChipSpec("laea", lon, lat, crs="EPSG:3035")]
    for spec in specs:
        write_chip(tmp_path, spec)
    # A glacier of 100 m radius around the centre, given in lon/lat.
    utm = gpd.GeoSeries([Point(lon, lat)], crs="EPSG:4326").to_crs("EPSG:32632")
    glacier = utm.buffer(100).to_crs("EPSG:4326")
    gpd.GeoDataFrame({"RGIId": ["RGI60-11.00001"]}, geometry=glacier).to_file(tmp_path / "rgi.gpkg")
    block = dataset_block(tmp_path)
    del block["masks"]
    block["outlines"] = {"file": str(tmp_path / "rgi.gpkg"), "format": "rgi"}
    dataset = ChipDataset.from_config("alps", block)
    for spec in specs:
        chip = read_chip(dataset, ChipFiles(tmp_path / f"images/{spec.stem}.tif", None))
        glacier_pixels = (chip.labels == GLACIER).sum()
        assert glacier_pixels * 100 == pytest.approx(np.pi * 100**2, rel=0.1)  # 10 m pixels
        assert chip.labels[24, 24] == GLACIER and chip.labels[5, 40] == NOT_GLACIER


# ---------------------------------------------------------------- bad chips


def write_bad_chips(root: Path) -> dict[str, str]:
    """Chips that cannot be used, with the words their reason must contain."""
    write_chip(root, ChipSpec("good", *site(0)))
    write_chip(root, ChipSpec("nomask", *site(1)))
    (root / "masks/nomask.tif").unlink()
    spec = ChipSpec("shifted", *site(2))
    write_chip(root, spec)
    _, mask = chip_arrays(spec)
    grid = spec.grid()
    moved = type(grid)(grid.crs, grid.transform @ grid.transform.translation(3, 0), 48, 48)
    write_raster(root / "masks/shifted.tif", mask, moved)
    spec = ChipSpec("threebands", *site(3))
    dn, mask = chip_arrays(spec)
    write_raster(root / "images/threebands.tif", dn[:3], spec.grid(), nodata=0)
    write_raster(root / "masks/threebands.tif", mask, spec.grid())
    spec = ChipSpec("empty", *site(4))
    write_chip(root, spec)
    write_raster(root / "images/empty.tif", np.zeros((4, 48, 48), np.uint16), spec.grid(), 0)
    (root / "images/broken.tif").write_bytes(b"II*\x00 not a tiff")
    write_chip(root, ChipSpec("broken", *site(5)), images="unused")
    return {
        "nomask": "not found",
        "shifted": "another grid",
        "threebands": "has 3 band(s)",
        "empty": "no pixel",
        "broken": "unreadable",
    }


def test_bad_chips_are_skipped_with_their_reason_in_log_and_inventory(tmp_path, caplog):
    reasons = write_bad_chips(tmp_path)
    with caplog.at_level(logging.WARNING):
        out = prepare(dataset_block(tmp_path), tmp_path)
    table = inventory(out).set_index(inventory(out)["image"].map(lambda p: Path(p).stem))
    assert table.loc["good", "status"] == "used" and table.loc["good", "split"] == "test"
    for stem, words in reasons.items():
        assert table.loc[stem, "status"] == "skipped"
        assert words in table.loc[stem, "reason"], (stem, table.loc[stem, "reason"])
        assert any(stem in r.message and words in r.message for r in caplog.records), stem
    assert len(TileSet.load(out["test"])) == 4  # the good chip: 48 px -> 2 x 2 tiles of 32


def test_on_bad_chip_error_stops_naming_the_file_and_writes_nothing(tmp_path):
    write_bad_chips(tmp_path)
    message = r"images/broken\.tif: unreadable.*on_bad_chip. is error"
    with pytest.raises(InputDataError, match=message):
        prepare(dataset_block(tmp_path, on_bad_chip="error"), tmp_path)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_dataset_without_any_usable_chip_is_refused(tmp_path):
    spec = ChipSpec("empty", *site(0))
    write_chip(tmp_path, spec)
    write_raster(tmp_path / "images/empty.tif", np.zeros((4, 48, 48), np.uint16), spec.grid(), 0)
    with pytest.raises(InputDataError, match=r"'alps'.*none of its 1 chips is usable"):
        prepare(dataset_block(tmp_path), tmp_path)


# ---------------------------------------------------------------- tiles


def test_a_chip_smaller_than_a_tile_is_padded_with_nodata(tmp_path):
    spec = ChipSpec("small", *site(0), shape=(20, 24))
    write_chip(tmp_path, spec)
    dn, mask = chip_arrays(spec)
    out = prepare(dataset_block(tmp_path), tmp_path, {**TILES, "max_nodata_fraction": 0.2})
    tiles = TileSet.load(out["test"])
    assert tiles.images.shape == (1, 4, 32, 32)
    np.testing.assert_allclose(
        tiles.images[0, :, :20, :24], np.where(dn == 0, 0, dn * SCALE), rtol=1e-6
    )
    assert (tiles.images[0, :, 20:] == 0).all() and (tiles.images[0, :, :, 24:] == 0).all()
    assert (tiles.masks[0, 20:] == NODATA).all() and (tiles.masks[0, :, 24:] == NODATA).all()
    labelled = np.where(mask == IGNORE, NODATA, mask)
    labelled[:, :NODATA_COLUMNS] = NODATA
    np.testing.assert_array_equal(tiles.masks[0, :20, :24], labelled)
    # The padding (57% of the tile) does not count as nodata: only the chip's own
    # unlabelled pixels (2 columns and the ignore box, 14%) do.
    assert inventory(out)["n_tiles"].tolist() == [1]


def test_tiles_keep_the_georeference_of_their_chip_in_every_crs(tmp_path):
    specs = [
        ChipSpec("utm32", *site(0), crs="EPSG:32632", seed=1),
        ChipSpec("utm33", *site(1), crs="EPSG:32633", seed=2),
        ChipSpec("laea", *site(2), crs="EPSG:3035", shape=(40, 56), seed=3),
        ChipSpec("lonlat", *site(3), crs="EPSG:4326", seed=4),
    ]
    for spec in specs:
        write_chip(tmp_path, spec)
    out = prepare(dataset_block(tmp_path, split="train"), tmp_path)
    tiles = TileSet.load(out["train"])
    assert tiles.per_tile and len(tiles) == 4 * 4
    seen = set()
    for i in range(len(tiles)):
        crs = rasterio.crs.CRS.from_wkt(tiles.tile_crs(i))
        spec = next(s for s in specs if rasterio.crs.CRS.from_user_input(s.crs) == crs)
        seen.add(spec.stem)
        # The map position of tile pixel (5, 7), read back from the chip file there.
        x, y = tiles.tile_transform(i) @ (7.5, 5.5)
        with rasterio.open(tmp_path / f"images/{spec.stem}.tif") as chip:
            (value,) = chip.sample([(x, y)], indexes=[2])
        assert tiles.images[i, 1, 5, 7] == pytest.approx(value[0] * SCALE, rel=1e-6)
    assert seen == {s.stem for s in specs}


def test_band_statistics_come_from_training_chips_only(tmp_path):
    # 64 px chips in tiles of 32 at stride 32: each pixel in one tile.
    bright = [ChipSpec(f"s{i}", *site(i), shape=(64, 64), seed=i) for i in range(6)]
    for spec in bright:
        write_chip(tmp_path, spec)
    block = dataset_block(
        tmp_path, split="train_val", validation={"fraction": 0.34, "block_m": 500}
    )
    out = prepare(block, tmp_path)
    table = inventory(out)
    train = [Path(p).stem for p in table[table["split"] == "train"]["image"]]
    assert 0 < len(train) < 6
    pixels = []
    for spec in bright:
        if spec.stem in train:
            dn, _ = chip_arrays(spec)
            pixels.append(dn[:, dn[0] != 0] * SCALE)
    expected = np.concatenate(pixels, axis=1)
    stats = json.loads(out["stats"].read_text())
    assert stats["count"] == expected.shape[1]
    np.testing.assert_allclose(stats["mean"], expected.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], expected.std(axis=1), rtol=1e-4)


def test_a_test_dataset_has_only_test_tiles_and_no_statistics(tmp_path):
    write_chip(tmp_path, ChipSpec("c", *site(0)))
    out = prepare(dataset_block(tmp_path, split="test"), tmp_path)
    assert [len(TileSet.load(out[s])) for s in ("train", "val", "test")] == [0, 0, 4]
    stats = json.loads(out["stats"].read_text())
    assert stats["count"] == 0 and stats["mean"] is None


# ---------------------------------------------------------------- split by ground


def footprints_lonlat(tiles: TileSet) -> gpd.GeoSeries:
    shapes = []
    for i in range(len(tiles)):
        transform = tiles.tile_transform(i)
        height, width = tiles.windows[i, 2:]
        (x0, y0), (x1, y1) = transform @ (0, 0), transform @ (width, height)
        tile = gpd.GeoSeries([box(x0, y1, x1, y0)], crs=tiles.tile_crs(i))
        shapes.append(tile.to_crs("EPSG:32632").iloc[0])
    return gpd.GeoSeries(shapes, crs="EPSG:32632")


def write_two_year_sites(root: Path, n_sites: int = 10) -> dict[str, int]:
    """Per site one chip of 2019 and one of 2021 (the second shifted by a few pixels,
    some in another CRS): stem -> site."""
    sites = {}
    crss = ("EPSG:32632", "EPSG:3035", "EPSG:4326")
    for i in range(n_sites):
        lon, lat = site(i)
        for year, shift, crs in ((2019, 0.0, "EPSG:32632"), (2021, 0.001, crss[i % 3])):
            stem = f"site{i:02d}_{year}0815"
            write_chip(root, ChipSpec(stem, lon + shift, lat, crs=crs, seed=i * 10 + year))
            sites[stem] = i
    return sites


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_chips_of_one_ground_never_fall_on_both_sides(tmp_path, seed):
    sites = write_two_year_sites(tmp_path)
    validation = {"fraction": 0.3, "block_m": 200, "seed": seed}  # blocks smaller than chips
    block = dataset_block(tmp_path, split="train_val", validation=validation)
    block["acquired"] = {"pattern": r"_(\d{8})$", "format": "%Y%m%d"}
    out = prepare(block, tmp_path)
    table = inventory(out)
    table["site"] = [sites[Path(p).stem] for p in table["image"]]
    assert set(table["split"]) == {"train", "val"}
    assert (table.groupby("site")["split"].nunique() == 1).all()
    assert set(table["acquired"]) == {"2019-08-15", "2021-08-15"}
    # Independently of the inventory: no training tile covers ground of a validation tile.
    train = footprints_lonlat(TileSet.load(out["train"]))
    val = footprints_lonlat(TileSet.load(out["val"]))
    assert not train.union_all().intersection(val.union_all()).area > 1.0  # m2
    n_val = len(TileSet.load(out["val"]))
    assert 0 < n_val <= 0.3 * (n_val + len(TileSet.load(out["train"])))


def test_chips_sharing_a_block_stay_together(tmp_path):
    for i in range(6):
        write_chip(tmp_path, ChipSpec(f"c{i}", *site(i), seed=i))
    # Blocks of 4 km hold neighbouring sites (~1.5 km apart) that share no ground.
    block = dataset_block(
        tmp_path, split="train_val", validation={"fraction": 0.5, "block_m": 4000}
    )
    table = inventory(prepare(block, tmp_path))
    from glaciermap.data.chip_split import footprints, ground_groups

    grids = [ChipSpec(f"c{i}", *site(i)).grid() for i in range(6)]
    centres = footprints(grids).centroid
    blocks = list(
        zip((centres.x // 4000).astype(int), (centres.y // 4000).astype(int), strict=True)
    )
    split = dict(zip(table["image"].map(lambda p: Path(p).stem), table["split"], strict=True))
    for i in range(6):
        for j in range(6):
            if blocks[i] == blocks[j]:
                assert split[f"c{i}"] == split[f"c{j}"]
    assert len(set(ground_groups(grids, 4000))) < 6  # some sites did share a block


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_is_balanced_by_labelled_pixels_and_glacier_fraction(seed):
    from glaciermap.data.chip_split import assign_train_val

    grids = [ChipSpec(f"c{i}", *site(i)).grid() for i in range(10)]  # 10 ground groups
    labelled = [1000, 1000, 1000, 1000, 1000, 2000, 2000, 2000, 500, 500]
    glacier_fraction = [0.05, 0.9, 0.5, 0.3, 0.7, 0.1, 0.6, 0.45, 0.95, 0.0]
    glacier = [round(n * f) for n, f in zip(labelled, glacier_fraction, strict=True)]
    splits = np.array(assign_train_val(grids, labelled, glacier, 0.3, 100, seed))
    val = splits == "val"
    n_val = np.asarray(labelled)[val].sum()
    assert 0.2 * sum(labelled) <= n_val <= 0.3 * sum(labelled)
    overall = sum(glacier) / sum(labelled)
    assert abs(np.asarray(glacier)[val].sum() / n_val - overall) < 0.05


def test_one_ground_group_cannot_be_split(tmp_path):
    for year in (2019, 2021):
        write_chip(tmp_path, ChipSpec(f"same_{year}", *site(0), seed=year))
    block = dataset_block(tmp_path, split="train_val")
    with pytest.raises(InputDataError, match=r"data\.chips\.alps\.validation.*1 group"):
        prepare(block, tmp_path)


# ---------------------------------------------------------------- config


def config_with_chips(tmp_path: Path, block: dict) -> dict:
    spec = ChipSpec("scene", *site(0), shape=(64, 64))
    dn, _ = chip_arrays(spec)
    write_raster(tmp_path / "scene.tif", dn, spec.grid(), nodata=0)
    outline = box(*spec.grid().bounds).buffer(-100)
    gpd.GeoDataFrame({"RGIId": ["G1"]}, geometry=[outline], crs="EPSG:32632").to_file(
        tmp_path / "rgi.gpkg"
    )
    return {
        "data": {
            "scenes": {
                "july": {
                    "acquired": "2023-07-15",
                    "file": "scene.tif",
                    "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4},
                }
            },  # fmt: skip
            "outlines": {"file": "rgi.gpkg"},
            "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [0, 0, 1, 1]}},
            "chips": {"alps": block},
        }
    }


def test_config_fills_chip_defaults_and_checks_files(tmp_path):
    write_chip(tmp_path, ChipSpec("c", *site(0)))
    config = validate_config(config_with_chips(tmp_path, dataset_block(tmp_path, split="test")))
    chips = config["data"]["chips"]["alps"]
    assert chips["on_bad_chip"] == "skip" and chips["validation"]["block_m"] == 10000
    assert chips["product"] == "generic" and chips["acquired"] is None
    check_config(config, tmp_path)
    # The schema's defaults are the dataset's defaults.
    bare = validate_config(
        config_with_chips(tmp_path, {"images": "x", "masks": "{stem}", "split": "test"})
    )
    dataset = ChipDataset.from_config("alps", bare["data"]["chips"]["alps"])
    defaults = ChipDataset("alps", "x", "test", masks="{stem}")
    assert dataset == defaults


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda b: b.pop("split"), "data.chips.alps"),
        (lambda b: b.update(maks="m/{stem}.tif"), "data.chips.alps"),
        (lambda b: b.update(split="both"), "data.chips.alps.split"),
        (lambda b: b.update(masks="masks/all.tif"), "data.chips.alps.masks"),
        (lambda b: b.update(acquired="15.08.2021"), "data.chips.alps.acquired"),
        (lambda b: b.update(on_bad_chip="ignore"), "data.chips.alps.on_bad_chip"),
        (lambda b: b["validation"].update(fraction=1.5), "data.chips.alps.validation.fraction"),
    ],
)
def test_schema_errors_name_the_chip_key(tmp_path, change, key):
    block = dataset_block(tmp_path, validation={})
    change(block)
    with pytest.raises(ConfigError, match=rf"'{key}"):
        validate_config(config_with_chips(tmp_path, block))


def test_config_checks_chip_labels_and_files(tmp_path):
    write_chip(tmp_path, ChipSpec("c", *site(0)))
    config = config_with_chips(tmp_path, dataset_block(tmp_path))
    clash = copy.deepcopy(config)
    clash["data"]["chips"] = {"july": clash["data"]["chips"]["alps"]}
    with pytest.raises(ConfigError, match=r"'data\.chips\.july'.*scene label"):
        check_config(validate_config(clash), tmp_path)
    missing = copy.deepcopy(config)
    missing["data"]["chips"]["alps"]["images"] = "nowhere/*.tif"
    with pytest.raises(ConfigError, match=r"'data\.chips\.alps\.images'.*nowhere"):
        check_config(validate_config(missing), tmp_path)
    glims = copy.deepcopy(config)
    frame = gpd.read_file(tmp_path / "rgi.gpkg").rename(columns={"RGIId": "glac_id"})
    frame.assign(line_type="glac_bound").to_file(tmp_path / "glims.gpkg")
    block = glims["data"]["chips"]["alps"]
    del block["masks"]
    block["outlines"] = {"file": "glims.gpkg"}
    with pytest.raises(ConfigError, match=r"'data\.chips\.alps\.acquired'.*GLIMS"):
        check_config(validate_config(glims), tmp_path)
    block["acquired"] = "2021-08-15"
    check_config(validate_config(glims), tmp_path)


def test_a_chip_only_config_needs_training_and_test_chips(tmp_path):
    """Without data.scenes the chips play every role: train_val and test datasets; the
    scene keys come together or not at all."""
    write_chip(tmp_path, ChipSpec("c", *site(0)))
    chips = {
        "alps": dataset_block(tmp_path, split="train_val"),
        "karakoram": dataset_block(tmp_path, split="test"),
    }
    check_config(validate_config({"data": {"chips": copy.deepcopy(chips)}}), tmp_path)
    no_test = validate_config({"data": {"chips": {"alps": chips["alps"]}}})
    with pytest.raises(ConfigError, match=r"'data\.scenes'.*split: test.*alps \(train_val\)"):
        check_config(no_test, tmp_path)
    only_train = validate_config(
        {"data": {"chips": {"a": {**chips["alps"], "split": "train"}, "k": chips["karakoram"]}}}
    )
    with pytest.raises(ConfigError, match=r"split: train_val or kfold") as error:
        check_config(only_train, tmp_path)
    assert "split: test" not in str(error.value)
    with pytest.raises(ConfigError, match=r"'data\.scenes'"):
        check_config(validate_config({"data": {}}), tmp_path)
    scenes = config_with_chips(tmp_path, chips["alps"])["data"]
    for key in ("outlines", "regions"):
        partial = {"data": {k: v for k, v in scenes.items() if k != key}}
        with pytest.raises(ConfigError, match=rf"'data'.*'{key}'"):
            validate_config(partial)
    acquiring = validate_config({"data": {"chips": copy.deepcopy(chips)}})
    acquiring["acquire"] = {"enabled": True}
    with pytest.raises(ConfigError, match=r"'acquire\.enabled'.*data\.scenes"):
        check_config(acquiring, tmp_path)


def test_a_file_name_without_a_date_is_a_bad_chip(tmp_path):
    write_chip(tmp_path, ChipSpec("site_20210815", *site(0)))
    write_chip(tmp_path, ChipSpec("site_undated", *site(1)))
    block = dataset_block(tmp_path, acquired={"pattern": r"_(\d{8})", "format": "%Y%m%d"})
    table = inventory(prepare(block, tmp_path)).set_index("status")
    assert table.loc["used", "acquired"] == "2021-08-15"
    assert "does not match acquired.pattern" in table.loc["skipped", "reason"]


def test_readme_chip_example_is_a_valid_config():
    """The chip datasets the README shows validate against the schema."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("```yaml\n# chips example")
    text = readme[start + len("```yaml\n") : readme.index("```", start + 7)]
    chips = yaml.safe_load(text)["data"]["chips"]
    for label, block in chips.items():
        config = {"data": {"scenes": {"oct2000": {"acquired": "2000-10-30", "bands": {
            "blue": 1, "green": 2, "red": 3, "nir": 4}}}, "outlines": {"file": "x"},
            "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [0, 0, 1, 1]}},
            "chips": {label: block}}}  # fmt: skip
        validate_config(config)
        ChipDataset.from_config(label, config["data"]["chips"][label])
    assert {block["split"] for block in chips.values()} >= {"train_val", "test"}


def test_readme_chip_only_example_is_a_complete_config():
    """The README's chip-only config validates as it stands (no scene keys)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("```yaml\n# chip-only example")
    config = yaml.safe_load(readme[start + len("```yaml\n") : readme.index("```", start + 7)])
    validate_config(config)
    assert "scenes" not in config["data"]
    for label, block in config["data"]["chips"].items():
        ChipDataset.from_config(label, block)
    start = readme.index("```yaml\n# k-fold example")
    kfold = yaml.safe_load(readme[start + len("```yaml\n") : readme.index("```", start + 7)])
    dataset = ChipDataset.from_config("alps", validate_config(kfold)["data"]["chips"]["alps"])
    assert dataset.cross_validated and dataset.folds == 5


def test_reading_a_chip_on_a_rotated_grid_keeps_its_transform(tmp_path):
    """Any affine grid: tiles carry the chip's transform unchanged."""
    dn, mask = chip_arrays(ChipSpec("r", *site(0)))
    transform = from_origin(600000, 5150000, 10, 10) @ rasterio.Affine.rotation(10)
    grid = type(ChipSpec("r", 0, 0).grid())(rasterio.crs.CRS.from_epsg(32632), transform, 48, 48)
    write_raster(tmp_path / "images/r.tif", dn, grid, nodata=0)
    write_raster(tmp_path / "masks/r.tif", mask, grid)
    tiles = TileSet.load(prepare(dataset_block(tmp_path), tmp_path)["test"])
    row, col = tiles.windows[3, :2]
    assert tiles.tile_transform(3) @ (0, 0) == pytest.approx(transform @ (col, row))


def test_every_tile_carries_the_robust_range_of_its_own_chip(tmp_path):
    specs = [ChipSpec(f"r{i}", *site(i), shape=(48, 40 + 8 * i), seed=20 + i) for i in range(3)]
    for spec in specs:
        write_chip(tmp_path, spec)
    # Chip r1 darker by half: its range differs from the others'.
    dn, _ = chip_arrays(specs[1])
    write_raster(tmp_path / "images/r1.tif", dn // 2, specs[1].grid(), nodata=0)
    tiles = TileSet.load(prepare(dataset_block(tmp_path, split="train"), tmp_path)["train"])
    expected = {}
    for spec in specs:
        dn, _ = chip_arrays(spec)
        dn = dn // 2 if spec.stem == "r1" else dn
        valid = (dn != 0).all(axis=0)
        expected[spec.grid().transform] = np.percentile(dn[:, valid] * SCALE, [2, 98], axis=1).T
    assert tiles.ranges.shape == (len(tiles), 4, 2)
    for i in range(len(tiles)):
        chip = rasterio.Affine(*tiles.transform[i])
        np.testing.assert_allclose(tiles.ranges[i], expected[chip], rtol=1e-5)
    assert len({tuple(r.ravel()) for r in tiles.ranges}) == 3


def test_a_chip_with_a_constant_band_or_too_few_pixels_is_skipped_with_its_numbers(tmp_path):
    write_chip(tmp_path, ChipSpec("good", *site(0)))
    spec = ChipSpec("flat", *site(1))
    write_chip(tmp_path, spec)
    dn, _ = chip_arrays(spec)
    dn[3] = np.where(dn[3] == 0, 0, 3000)  # nir constant where there is data
    write_raster(tmp_path / "images/flat.tif", dn, spec.grid(), nodata=0)
    spec = ChipSpec("tiny", *site(2), shape=(8, 9))
    write_chip(tmp_path, spec)
    out = prepare(dataset_block(tmp_path), tmp_path)
    table = inventory(out).set_index(inventory(out)["image"].map(lambda p: Path(p).stem))
    assert table.loc["good", "status"] == "used"
    assert "band nir is constant (0.3 from the 2nd to the 98th" in table.loc["flat", "reason"]
    assert "valid pixel(s) of 8x9: at least 100" in table.loc["tiny", "reason"]


def test_a_chip_declaring_more_pixels_than_memory_is_skipped_before_reading(tmp_path):
    write_chip(tmp_path, ChipSpec("good", *site(0)))
    grid = ChipSpec("huge", *site(1)).grid()
    profile = dict(driver="GTiff", width=200_000, height=200_000, count=4, dtype="uint16",
                   crs=grid.crs, transform=grid.transform, tiled=True, blockxsize=2048,
                   blockysize=2048, sparse_ok=True, compress="deflate")  # fmt: skip
    with rasterio.open(tmp_path / "images" / "huge.tif", "w", **profile):
        pass  # a few kB on disk
    out = prepare(dataset_block(tmp_path), tmp_path)
    table = inventory(out).set_index(inventory(out)["image"].map(lambda p: Path(p).stem))
    assert table.loc["good", "status"] == "used"
    assert "declares 200000x200000 pixels: reading it needs about" in table.loc["huge", "reason"]
