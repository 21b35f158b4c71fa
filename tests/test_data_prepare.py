"""The data-preparation commands on a tiny synthetic scene: outputs and bad inputs.

Each bad input must give one error naming the file or config key, a non-zero
exit from the ``glaciermap`` command, and no output file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin
from shapely.geometry import box

from glaciermap.cli import main
from glaciermap.data.tilestore import TileSet

X0, Y0, PIXEL, SIDE = 500000, 7000000, 10, 128
CRS = "EPSG:32633"
TRANSFORM = from_origin(X0, Y0, PIXEL, PIXEL)
SHIFTED = from_origin(X0 + 5, Y0 - 5, PIXEL, PIXEL)
TRAIN_GLACIER = box(X0 + 400, Y0 - 1100, X0 + 1000, Y0 - 700)
ROCK = box(X0 + 600, Y0 - 1000, X0 + 700, Y0 - 900)
TEST_GLACIER = box(X0 + 300, Y0 - 300, X0 + 900, Y0 - 100)


def scene_dn() -> np.ndarray:
    dn = np.random.default_rng(0).integers(100, 5000, (4, SIDE, SIDE)).astype(np.uint16)
    dn[:, :, :20] = 0  # nodata strip on the left
    return dn


def write_outlines(path: Path, rows: list[tuple] | None = None) -> None:
    rows = rows or [
        ("G1", "glac_bound", TRAIN_GLACIER),
        ("G1", "intrnl_rock", ROCK),
        ("G2", "glac_bound", TEST_GLACIER),
    ]
    frame = gpd.GeoDataFrame(
        {
            "glac_id": [r[0] for r in rows],
            "line_type": [r[1] for r in rows],
            "src_date": ["2023-07-01"] * len(rows),
        },
        geometry=[r[2] for r in rows],
        crs=CRS,
    )
    frame.to_crs("EPSG:4326").to_file(path)  # in another CRS than the scene


def base_config() -> dict:
    return {
        "data": {
            "scenes": {
                "july": {
                    "acquired": "2023-07-15",
                    "file": "scene.tif",
                    "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4},
                    "nodata": 0,
                    "scale": 0.0001,
                }
            },
            "outlines": {"file": "glims.gpkg"},
            "regions": {
                "train": {"bbox": [X0, Y0 - 1280, X0 + 1280, Y0 - 480]},
                "test": {"glaciers": ["G2"], "buffer_m": 100},
            },
            "tiles": {"size": 32, "stride": 16, "val_fraction": 0.2, "val_block_tiles": 1},
        }
    }


@pytest.fixture
def workdir(tmp_path, monkeypatch, geotiff) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    geotiff(tmp_path / "scene.tif", scene_dn(), crs=CRS, transform=TRANSFORM)
    # The same scene half a pixel off the grid, for a second date.
    geotiff(tmp_path / "other.tif", scene_dn(), crs=CRS, transform=SHIFTED)
    write_outlines(tmp_path / "glims.gpkg")
    write_config(base_config())
    yield tmp_path
    # main() logs to the stderr that capsys provided; drop that handler with it.
    logging.getLogger().handlers.clear()


def write_config(config: dict) -> None:
    Path("config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run_all() -> list[int]:
    return [
        main(["prepare-scene", "--date", "july", "--out", "out/scenes/july.tif"]),
        main(["rasterize", "--date", "july", "--scene", "out/scenes/july.tif",
              "--out", "out/masks/july.tif"]),
        main(["regions", "--scene", "out/scenes/july.tif", "--out", "out/regions.tif"]),
        main(["tiles", "--scene", "out/scenes/july.tif", "--mask", "out/masks/july.tif",
              "--regions", "out/regions.tif", "--out", "out/tiles/july"]),
    ]  # fmt: skip


def test_commands_write_georeferenced_masks_and_tiles(workdir):
    assert run_all() == [0, 0, 0, 0]
    with (
        rasterio.open("out/scenes/july.tif") as scene_file,
        rasterio.open("out/masks/july.tif") as mask_file,
    ):
        scene, mask = scene_file.read(), mask_file.read(1)
        assert mask_file.crs == scene_file.crs and mask_file.transform == scene_file.transform
        assert mask_file.nodata == 255 and mask.dtype == np.uint8
    np.testing.assert_allclose(scene[0, 5, 50], np.float32(scene[0, 5, 50]))
    assert np.isnan(scene[:, :, :20]).all() and (mask[:, :20] == 255).all()
    # Outlines came in EPSG:4326; G1's rock is cut out, both glaciers are burnt.
    assert (mask == 1).sum() == (40 * 60 - 10 * 10) + 20 * 60
    assert mask[95, 65] == 0 and mask[85, 45] == 1 and mask[20, 60] == 1

    regions = rasterio.open("out/regions.tif").read(1)
    tiles = {
        split: TileSet.load(f"out/tiles/july/{split}.npz") for split in ("train", "val", "test")
    }
    assert all(len(t) for t in tiles.values())
    for split, code in (("train", 1), ("val", 2), ("test", 3)):
        for row, col, height, width in tiles[split].windows:
            assert (regions[row : row + height, col : col + width] == code).all()
    for tile_set in tiles.values():
        i = len(tile_set) - 1
        row, col = tile_set.windows[i, :2]
        # A tile's transform maps its pixels to the scene's map coordinates.
        assert tile_set.tile_transform(i) @ (0, 0) == scene_file.transform @ (col, row)
        np.testing.assert_array_equal(
            tile_set.images[i], np.nan_to_num(scene[:, row : row + 32, col : col + 32])
        )
        # Tile masks keep the reference labels, 255 (no label) where the scene is nodata.
        np.testing.assert_array_equal(tile_set.masks[i], mask[row : row + 32, col : col + 32])
        # Tiles with more than half nodata (the left strip) are skipped.
        assert (tile_set.windows[:, 1] >= 16).all()

    stats = json.loads(Path("out/tiles/july/stats.json").read_text())
    train = tiles["train"]
    valid = np.stack([np.isfinite(scene[0, r : r + h, c : c + w]) for r, c, h, w in train.windows])
    assert not valid.all()  # some train tiles reach into the nodata strip
    assert set(np.unique(train.masks)) == {0, 1, 255}
    assert ((train.masks == 255) == ~valid).all()
    expected = train.images[:, 3][valid]
    assert stats["bands"] == ["blue", "green", "red", "nir"]
    assert stats["count"] == expected.size
    assert stats["mean"][3] == pytest.approx(expected.mean(), rel=1e-6)


SCENE_OUT = "out/scenes/july.tif"


def prepare_good_scene() -> None:
    assert main(SCENE_CMD) == 0


def _garbage_scene(tmp: Path) -> None:
    Path("scene.tif").write_bytes(b"not a raster")


def _truncated_scene(tmp: Path) -> None:
    data = Path("scene.tif").read_bytes()
    Path("scene.tif").write_bytes(data[: len(data) // 2])


def _huge_sparse_scene(tmp: Path) -> None:
    """A few kB on disk that declare 200000 x 200000 pixels: refused from the header."""
    Path("scene.tif").unlink()
    with rasterio.open("scene.tif", "w", driver="GTiff", width=200_000, height=200_000, count=4,
                       dtype="uint16", crs=CRS, transform=TRANSFORM, tiled=True, blockxsize=2048,
                       blockysize=2048, sparse_ok=True, compress="deflate"):  # fmt: skip
        pass


def _config_change(change):
    def apply(tmp: Path) -> None:
        config = base_config()
        change(config["data"])
        write_config(config)

    return apply


def _second_date_on_other_grid(data: dict) -> None:
    data["scenes"]["aug"] = dict(data["scenes"]["july"], file="other.tif", acquired="2023-08-20")
    data["on_grid_mismatch"] = "error"


def _write_validity(path: str, array: np.ndarray, pixel: float = PIXEL) -> None:
    with rasterio.open(
        path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
        dtype="uint8", crs="EPSG:32633", transform=from_origin(X0, Y0, pixel, pixel),
    ) as out:  # fmt: skip
        out.write(array.astype(np.uint8), 1)


def _mask_not_covering(data: dict) -> None:
    _write_validity("clouds.tif", np.zeros((SIDE // 2, SIDE)))  # the northern half only
    data["scenes"]["july"]["validity"] = {"mask": "clouds.tif"}


def _mostly_cloudy(data: dict) -> None:
    clouds = np.zeros((SIDE, SIDE))
    clouds[:, 20:100] = 1
    _write_validity("clouds.tif", clouds)
    data["scenes"]["july"]["validity"] = {"mask": "clouds.tif"}
    data["min_valid_fraction"] = 0.5


def _scl_not_scl(data: dict) -> None:
    _write_validity("scl.tif", np.full((SIDE // 2, SIDE // 2), 20), pixel=2 * PIXEL)
    data["scenes"]["july"]["validity"] = {"scl": "scl.tif"}


def _far_outlines(tmp: Path) -> None:
    far = box(X0 + 90000, Y0 - 90000, X0 + 91000, Y0 - 89000)
    write_outlines(Path("glims.gpkg"), [("G2", "glac_bound", far)])


def _empty_outlines(tmp: Path) -> None:
    _config_change(lambda d: d["regions"].update(test={"bbox": [X0, Y0 - 480, X0 + 1280, Y0]}))(tmp)
    empty = gpd.GeoDataFrame({"glac_id": [], "line_type": []}, geometry=[], crs="EPSG:4326")
    Path("glims.gpkg").unlink()
    empty.to_file("glims.gpkg")


SCENE_CMD = ["prepare-scene", "--date", "july", "--out", SCENE_OUT]
AUG_CMD = ["prepare-scene", "--date", "aug", "--out", "out/scenes/aug.tif"]
MASK_CMD = ["rasterize", "--date", "july", "--scene", SCENE_OUT, "--out", "out/masks/july.tif"]
REGIONS_CMD = ["regions", "--scene", SCENE_OUT, "--out", "out/regions.tif"]


@pytest.mark.parametrize(
    ("breaks", "command", "message"),
    [
        (_garbage_scene, SCENE_CMD, r"cannot read raster scene\.tif.*bands\.blue"),
        (_truncated_scene, SCENE_CMD, r"scene\.tif.*truncated"),
        (
            _huge_sparse_scene,
            SCENE_CMD,
            r"raster scene\.tif \(config key 'data\.scenes\.july\.bands\.blue'\) declares "
            r"200000x200000 pixels: preparing it needs about \d+ GiB, more than this machine",
        ),
        (
            _config_change(lambda d: d["scenes"]["july"]["bands"].update(nir=5)),
            SCENE_CMD,
            r"scene\.tif \(config key 'data\.scenes\.july\.bands\.nir'\).*band 5 is missing",
        ),
        (
            _config_change(lambda d: d["scenes"]["july"]["bands"].update(nir="scene.tif")),
            SCENE_CMD,
            r"scene\.tif \(config key 'data\.scenes\.july\.bands\.nir'\) has 4 bands",
        ),
        (
            _config_change(_second_date_on_other_grid),
            AUG_CMD,
            r"other\.tif\) is on another grid.*data\.on_grid_mismatch",
        ),
        (
            _config_change(_mask_not_covering),
            SCENE_CMD,
            r"validity raster clouds\.tif \(config key 'data\.scenes\.july\.validity\.mask'\) "
            r"does not cover",
        ),
        (
            _config_change(_mostly_cloudy),
            SCENE_CMD,
            r"'data\.scenes\.july'\): 21\.9% of the grid .* is valid \(62\.5% masked.*"
            r"'data\.min_valid_fraction' \(50\.0%\)",
        ),
        (
            _config_change(_scl_not_scl),
            SCENE_CMD,
            r"SCL raster scl\.tif \(config key 'data\.scenes\.july\.validity\.scl'\) holds "
            r"values 20 outside",
        ),
        (_far_outlines, MASK_CMD, r"outline file glims\.gpkg: no outline overlaps the scene"),
        (_empty_outlines, MASK_CMD, r"outline file glims\.gpkg holds no outlines"),
        (_far_outlines, REGIONS_CMD, r"outline file glims\.gpkg: no outline overlaps the scene"),
        (
            _config_change(lambda d: d["regions"]["test"].update(glaciers=["G9"])),
            REGIONS_CMD,
            r"config key 'data\.regions\.test\.glaciers': G9 not in outline file glims\.gpkg",
        ),
        (
            _config_change(lambda d: d["outlines"].update(glaciers=["G1", "G7"])),
            MASK_CMD,
            r"config key 'data\.outlines\.glaciers': G7 not in outline file glims\.gpkg",
        ),
        (
            _config_change(
                lambda d: d["regions"].update(test={"bbox": [X0, Y0 - 250, X0 + 250, Y0]})
            ),
            REGIONS_CMD,
            r"config key 'data\.regions\.test': the region holds no whole 32x32 tile",
        ),
        (
            _config_change(lambda d: d["tiles"].update(sizes=64)),
            SCENE_CMD,
            r"config key 'data\.tiles'.*sizes",
        ),
        (
            _config_change(lambda d: d["scenes"]["july"].update(file="missing.tif")),
            SCENE_CMD,
            r"config key 'data\.scenes\.july\.file': file not found: missing\.tif",
        ),
    ],
    ids=[
        "unreadable-raster",
        "truncated-raster",
        "huge-declared-raster",
        "band-missing",
        "band-count-wrong",
        "dates-on-different-grids",
        "validity-mask-not-covering",
        "date-below-min-valid-fraction",
        "scl-values-not-classes",
        "outlines-without-overlap",
        "outlines-without-overlap-said-before-regions",
        "empty-outline-file",
        "region-glacier-id-not-in-file",
        "outline-glacier-id-not-in-file",
        "region-too-small",
        "unknown-config-key",
        "missing-file",
    ],
)
def test_bad_input_fails_clearly_without_output(workdir, capsys, breaks, command, message):
    if command[0] != "prepare-scene":
        prepare_good_scene()
    breaks(workdir)
    out = Path(command[command.index("--out") + 1])
    before = sorted(p for p in workdir.rglob("*") if p.is_file())
    capsys.readouterr()
    assert main(command) == 1
    error = capsys.readouterr().err
    assert len(re.findall(r" ERROR ", error)) == 1
    assert re.search(message, error), error
    assert not out.exists()
    after = sorted(p for p in workdir.rglob("*") if p.is_file())
    assert after == before  # no half-written or temporary file left behind


def test_other_date_on_another_grid_is_reprojected_onto_the_reference(workdir):
    config = base_config()
    _second_date_on_other_grid(config["data"])
    config["data"]["on_grid_mismatch"] = "reproject"
    write_config(config)
    assert main(AUG_CMD) == 0
    with rasterio.open("out/scenes/aug.tif") as reprojected:
        assert reprojected.transform == TRANSFORM and reprojected.shape == (SIDE, SIDE)


def test_a_glacier_free_test_region_is_refused(workdir, capsys):
    """Scores of a test region without glacier would be undefined: refused, no tiles written."""
    config = base_config()
    config["data"]["regions"]["test"] = {"bbox": [X0 + 960, Y0 - 480, X0 + 1280, Y0]}
    write_config(config)
    codes = run_all()
    assert codes == [0, 0, 0, 1]
    error = capsys.readouterr().err
    assert re.search(r"the test region holds no glacier pixel in out/masks/july\.tif", error)
    assert not Path("out/tiles/july").exists()


def test_mask_values_other_than_labels_are_refused(workdir, capsys, geotiff):
    assert run_all()[:3] == [0, 0, 0]
    with rasterio.open("out/masks/july.tif") as src:
        mask, profile = src.read(1), src.profile
    mask[40:44, 40:44] = 7
    with rasterio.open("out/masks/july.tif", "w", **profile) as dst:
        dst.write(mask, 1)
    assert main(["tiles", "--scene", "out/scenes/july.tif", "--mask", "out/masks/july.tif",
                 "--regions", "out/regions.tif", "--out", "out/tiles/again"]) == 1  # fmt: skip
    assert "out/masks/july.tif: values [7] are not labels" in capsys.readouterr().err
    assert not Path("out/tiles/again").exists()


def test_a_constant_scene_gives_no_tiles(workdir, capsys, geotiff):
    constant = np.full((4, SIDE, SIDE), 3000, np.uint16)
    geotiff(workdir / "scene.tif", constant, crs=CRS, transform=TRANSFORM)
    assert run_all() == [0, 0, 0, 1]
    error = capsys.readouterr().err
    assert re.search(r"scene out/scenes/july\.tif: band blue is constant \(0\.3 from", error)
    assert not Path("out/tiles/july").exists()
