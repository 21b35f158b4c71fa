"""The predict command and the workflow's map functions with a real checkpoint, and bad input."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import torch
from affine import Affine

from glaciermap import __version__
from glaciermap.cli import main
from glaciermap.errors import InputDataError
from glaciermap.inference.maps import predict_scene_maps
from glaciermap.inference.provenance import read_provenance
from glaciermap.models.checkpoint import load_predictor, save_prediction_checkpoint
from glaciermap.models.registry import build_model
from glaciermap.models.spec import ModelSpec
from glaciermap.runs import HParams

BANDS = ("blue", "green", "red", "nir")
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 3100000.0)
GRID = {"crs": "EPSG:32645", "transform": TRANSFORM}  # keywords of the geotiff fixture
INFERENCE = {"window": 64, "margin": 16, "blend": "gaussian", "batch_size": 8, "block_size": 256}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    spec = ModelSpec("pspnet", HParams(0.2, "sigmoid", "mean"), encoder="resnet18")
    path = tmp_path_factory.mktemp("run") / "best.pt"
    normalization = {"mean": [0.3, 0.3, 0.3, 0.4], "std": [0.1, 0.1, 0.1, 0.2]}
    save_prediction_checkpoint(path, build_model(spec), spec, normalization, 32, 0.5)
    return path


def reflectance(shape=(40, 50), seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.9, (4, *shape)).astype(np.float32)


def read(path):
    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset.crs, dataset.transform


def test_predict_command_on_a_geotiff_with_another_band_order(checkpoint, tmp_path, geotiff):
    bands = reflectance()
    shuffled = np.stack([bands[3], bands[2], bands[1], bands[0], bands[0] * 0])  # nir,red,...
    scene = geotiff(tmp_path / "scene.tif", shuffled, **GRID, nodata=np.nan)
    code = main(
        [
            "predict",
            "--checkpoint",
            str(checkpoint),
            "--scene",
            str(scene),
            "--bands",
            "blue=4,green=3,red=2,nir=1",
            "--out",
            str(tmp_path / "out"),
            "--min-area-km2",
            "0",
            "--date",
            "d1",
            "--device",
            "cpu",
            *("--window", "64", "--margin", "16"),  # as INFERENCE below
        ]
    )
    assert code == 0
    probability, crs, transform = read(tmp_path / "out" / "probability.tif")
    mask, _, _ = read(tmp_path / "out" / "mask.tif")
    assert probability.shape == (40, 50) and crs == "EPSG:32645" and transform == TRANSFORM
    assert np.array_equal(mask, (probability >= 0.5).astype(np.uint8))
    outlines = gpd.read_file(tmp_path / "out" / "outlines.gpkg")
    assert outlines.is_valid.all() and set(outlines.date) <= {"d1"}
    assert outlines.area_km2.sum() == pytest.approx(mask.sum() * 1e-4)
    # QGIS styles next to the maps: the mask's classes, the probability's ramp
    assert "paletteEntry" in (tmp_path / "out" / "mask.qml").read_text()
    assert "colorrampshader" in (tmp_path / "out" / "probability.qml").read_text()

    # the same bands in the workflow's order give the same map
    ordered = geotiff(tmp_path / "ordered.tif", bands, **GRID, nodata=np.nan, descriptions=BANDS)
    predict_scene_maps(
        checkpoint, ordered, tmp_path / "p.tif", tmp_path / "m.tif", INFERENCE, "cpu"
    )
    assert np.allclose(read(tmp_path / "p.tif")[0], probability, atol=1e-5)


def test_sentinel2_band_files_get_the_l2a_offset(checkpoint, tmp_path, geotiff):
    bands = reflectance(seed=1)
    folder = tmp_path / "S2B_MSIL2A_20230815T000000_N0509_R000_T45RVL_20230815T000000.SAFE"
    folder.mkdir()
    spec = []
    for name, band, code in zip(BANDS, bands, ("B02", "B03", "B04", "B08"), strict=True):
        dn = np.round(band * 10000 + 1000).astype(np.uint16)[None]
        dn[0, :2, :2] = 0  # L2A nodata
        spec.append(f"{name}={geotiff(folder / f'T45RVL_{code}_10m.tif', dn, **GRID)}")
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                "--bands",
                ",".join(spec),
                "--product",
                "sentinel2_l2a",
                "--out",
                str(tmp_path / "s2"),
                "--device",
                "cpu",
                *("--window", "64", "--margin", "16"),  # as INFERENCE below
            ]
        )
        == 0
    )
    expected = np.round(bands * 10000) / 10000
    expected[:, :2, :2] = np.nan
    ordered = geotiff(tmp_path / "ordered.tif", expected, **GRID, nodata=np.nan, descriptions=BANDS)
    predict_scene_maps(
        checkpoint, ordered, tmp_path / "p.tif", tmp_path / "m.tif", INFERENCE, "cpu"
    )
    s2 = read(tmp_path / "s2" / "probability.tif")[0]
    assert np.isnan(s2[:2, :2]).all()
    assert np.allclose(s2, read(tmp_path / "p.tif")[0], atol=1e-4, equal_nan=True)


def test_checkpoint_with_another_band_layout_is_refused(checkpoint, tmp_path):
    stored = torch.load(checkpoint, weights_only=True)
    stored["bands"] = ["B2", "B3", "B4", "B8"]
    torch.save(stored, tmp_path / "other.pt")
    with pytest.raises(InputDataError, match="band layout"):
        load_predictor(tmp_path / "other.pt", "cpu")


def test_scene_missing_a_band_is_refused(checkpoint, tmp_path, capsys, geotiff):
    three = geotiff(
        tmp_path / "rgb.tif", reflectance()[:3], **GRID, nodata=np.nan, descriptions=BANDS[:3]
    )
    with pytest.raises(InputDataError, match="no nir band"):
        predict_scene_maps(checkpoint, three, tmp_path / "p.tif", tmp_path / "m.tif", INFERENCE)
    code = main(
        [
            "predict",
            "--checkpoint",
            str(checkpoint),
            "--scene",
            str(three),
            "--bands",
            "blue=1,green=2,red=3,nir=4",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1
    # the command logs (to stderr) the error naming the file and the band
    assert (
        "rgb.tif: band nir asks for band 4, but the file has 3 band(s)" in capsys.readouterr().err
    )
    assert not (tmp_path / "p.tif").exists() and not (tmp_path / "o" / "mask.tif").exists()


def test_scene_smaller_than_a_tile_keeps_its_shape(checkpoint, tmp_path, geotiff):
    small = reflectance((12, 20))
    scene = geotiff(tmp_path / "small.tif", small, **GRID, nodata=np.nan, descriptions=BANDS)
    predict_scene_maps(checkpoint, scene, tmp_path / "p.tif", tmp_path / "m.tif", INFERENCE, "cpu")
    probability = read(tmp_path / "p.tif")[0]
    assert probability.shape == (12, 20) and np.isfinite(probability).all()


def test_all_nodata_scene_is_refused_in_one_line_and_writes_nothing(
    checkpoint, tmp_path, geotiff, capsys
):
    """An all-NaN scene used to give all-nodata maps; it is now refused (docs/robustness.md):
    fewer valid pixels than glaciermap.data.normalization.MIN_VALID_PIXELS."""
    nothing = np.full((4, 40, 40), np.nan, np.float32)
    scene = geotiff(tmp_path / "empty.tif", nothing, **GRID, nodata=np.nan)
    code = main(["predict", "--checkpoint", str(checkpoint), "--scene", str(scene),
                 "--out", str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert code == 1 and len(re.findall(r" ERROR ", error)) == 1
    assert re.search(r"scene .*empty\.tif: 0 valid pixel\(s\) of 40x40: at least 100", error)
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def test_scene_without_georeference_warns_and_maps(checkpoint, tmp_path, capsys, geotiff):
    scene = geotiff(tmp_path / "plain.tif", reflectance(), crs=None, nodata=np.nan)
    code = main(
        [
            "predict",
            "--checkpoint",
            str(checkpoint),
            "--scene",
            str(scene),
            "--out",
            str(tmp_path / "out"),
            "--threshold",
            "0.01",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert "WARNING" in (err := capsys.readouterr().err) and "no georeference" in err
    probability, crs, _ = read(tmp_path / "out" / "probability.tif")
    assert crs is None and probability.shape == (40, 50)
    outlines = gpd.read_file(tmp_path / "out" / "outlines.gpkg")
    assert len(outlines) and outlines.area_km2.isna().all()


def predict_cli(checkpoints, scene, out, *extra):
    args = ["predict", "--scene", str(scene), "--out", str(out), "--device", "cpu", *extra]
    for path in checkpoints:
        args += ["--checkpoint", str(path)]
    return main(args)


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory):
    """A second member: another seed's weights, another normalisation."""
    torch.manual_seed(1)
    spec = ModelSpec("pspnet", HParams(0.2, "sigmoid", "mean"), encoder="resnet18")
    path = tmp_path_factory.mktemp("run2") / "best.pt"
    normalization = {"mean": [0.5, 0.4, 0.3, 0.6], "std": [0.2, 0.2, 0.2, 0.3]}
    save_prediction_checkpoint(path, build_model(spec), spec, normalization, 32, 0.5)
    return path


def test_the_pipeline_output_is_byte_stable_across_runs(
    checkpoint, other_checkpoint, tmp_path, geotiff
):
    bands = reflectance((150, 130), seed=3)
    bands[:, :4, :7] = np.nan
    scene = geotiff(tmp_path / "scene.tif", bands, **GRID, nodata=np.nan, descriptions=BANDS)
    extra = ["--window", "64", "--margin", "16", "--block-size", "64", "--batch-size", "3"]
    for out in ("a", "b"):
        assert predict_cli([checkpoint, other_checkpoint], scene, tmp_path / out, *extra) == 0
    for name in ("probability.tif", "mask.tif", "uncertainty.tif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    probability = read(tmp_path / "a" / "probability.tif")[0]
    assert np.isnan(probability[:4, :7]).all() and np.isfinite(probability[4:]).all()
    assert len(np.unique(probability[4:])) > 1000  # a real map, not a constant


def test_an_ensemble_of_two_identical_checkpoints_is_the_member(checkpoint, tmp_path, geotiff):
    scene = geotiff(
        tmp_path / "scene.tif",
        reflectance((90, 70), seed=4),
        **GRID,
        nodata=np.nan,
        descriptions=BANDS,
    )
    extra = ["--window", "64", "--margin", "16", "--threshold", "0.45"]
    assert predict_cli([checkpoint], scene, tmp_path / "one", *extra) == 0
    assert predict_cli([checkpoint, checkpoint], scene, tmp_path / "two", *extra) == 0
    assert not (tmp_path / "one" / "uncertainty.tif").exists()  # one model: as before
    uncertainty, crs, transform = read(tmp_path / "two" / "uncertainty.tif")
    assert (crs, transform) == ("EPSG:32645", TRANSFORM) and (uncertainty == 0).all()
    for name in ("probability.tif", "mask.tif"):
        assert np.array_equal(read(tmp_path / "one" / name)[0], read(tmp_path / "two" / name)[0])
    assert 0 < read(tmp_path / "one" / "mask.tif")[0].mean() < 1


def test_an_ensemble_averages_its_members_and_maps_their_spread(
    checkpoint, other_checkpoint, tmp_path, geotiff
):
    bands = reflectance((90, 70), seed=5)
    bands[:, -3:, -3:] = np.nan
    scene = geotiff(tmp_path / "scene.tif", bands, **GRID, nodata=np.nan, descriptions=BANDS)
    maps = {}
    for name, members in (("a", [checkpoint]), ("b", [other_checkpoint])):
        predict_scene_maps(
            members, scene, tmp_path / f"{name}.tif", tmp_path / f"{name}m.tif", INFERENCE, "cpu"
        )
        maps[name] = read(tmp_path / f"{name}.tif")[0].astype(np.float64)
    predict_scene_maps(
        [checkpoint, other_checkpoint],
        scene,
        tmp_path / "p.tif",
        tmp_path / "m.tif",
        {**INFERENCE, "threshold": 0.5},
        "cpu",
        uncertainty_path=tmp_path / "u.tif",
    )
    probability, uncertainty, mask = (read(tmp_path / n)[0] for n in ("p.tif", "u.tif", "m.tif"))
    assert np.allclose(probability, (maps["a"] + maps["b"]) / 2, atol=1e-6, equal_nan=True)
    assert np.allclose(uncertainty, np.abs(maps["a"] - maps["b"]) / 2, atol=1e-6, equal_nan=True)
    assert np.nanmax(uncertainty) > 0.01
    assert np.isnan(uncertainty[-3:, -3:]).all() and (mask[-3:, -3:] == 255).all()
    assert np.array_equal(mask[:-3], (probability[:-3] >= 0.5).astype(np.uint8))
    with rasterio.open(tmp_path / "u.tif") as dataset:
        assert dataset.dtypes == ("float32",) and dataset.crs == "EPSG:32645"
        assert dataset.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_ensemble_members_must_share_a_band_layout_and_threshold(checkpoint, tmp_path, geotiff):
    stored = torch.load(checkpoint, weights_only=True)
    stored["threshold"] = 0.3
    torch.save(stored, tmp_path / "t03.pt")
    scene = geotiff(
        tmp_path / "scene.tif", reflectance(), **GRID, nodata=np.nan, descriptions=BANDS
    )
    with pytest.raises(InputDataError, match=r"t03\.pt store different thresholds"):
        predict_scene_maps(
            [checkpoint, tmp_path / "t03.pt"],
            scene,
            tmp_path / "p.tif",
            tmp_path / "m.tif",
            INFERENCE,
            "cpu",
            uncertainty_path=tmp_path / "u.tif",
        )
    assert sorted(f.name for f in tmp_path.iterdir()) == ["scene.tif", "t03.pt"]  # nothing else


# ---------------------------------------------------------------- outputs replaced as a set

# Runs `glaciermap predict` in a child that SIGKILLs itself at a chosen point:
# `outlines` (probability and mask written, outlines not) or `swap` (between the
# two renames that replace the output folder).
KILLED_PREDICT = """
import os, signal, sys
from glaciermap.cli import main
from glaciermap.inference import vectorize
from glaciermap.utils import atomic

point, argv = sys.argv[1], sys.argv[2:]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if point == "outlines":
    vectorize.write_outlines = die
else:
    rename, calls = os.rename, []
    def once_then_die(*args):
        calls.append(args)
        if len(calls) == 2:
            die()
        rename(*args)
    atomic.os.rename = once_then_die
sys.exit(main(argv))
"""


def provenance_of(folder):
    """The provenance of every file of a predict folder, by file name."""
    fields = {name: read_provenance(folder / name) for name in ("probability.tif", "mask.tif")}
    fields["outlines.gpkg"] = pyogrio.read_info(folder / "outlines.gpkg")["layer_metadata"]
    return fields


def predict_args(checkpoint, scene, out, threshold):
    return ["predict", "--checkpoint", str(checkpoint), "--scene", str(scene), "--out", str(out),
            "--threshold", str(threshold), "--device", "cpu", "--min-area-km2", "0"]  # fmt: skip


def test_outputs_record_version_checkpoint_sha256_threshold_and_scene(
    checkpoint, tmp_path, geotiff
):
    scene = geotiff(tmp_path / "scene.tif", reflectance(), **GRID, nodata=np.nan)
    assert main(predict_args(checkpoint, scene, tmp_path / "out", 0.5)) == 0
    expected = {
        "glaciermap_version": __version__,
        "checkpoints": str(checkpoint),
        "checkpoints_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "threshold": "0.5",
        "scene": str(scene),
    }
    for name, fields in provenance_of(tmp_path / "out").items():
        assert fields == expected, name


@pytest.mark.parametrize("point", ["outlines", "swap"])
def test_killed_predict_over_an_earlier_folder_leaves_no_mixed_set(
    checkpoint, tmp_path, geotiff, point
):
    scene = geotiff(tmp_path / "scene.tif", reflectance(), **GRID, nodata=np.nan)
    out = tmp_path / "out"
    assert main(predict_args(checkpoint, scene, out, 0.5)) == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_PREDICT, point, *predict_args(checkpoint, scene, out, 0.3)],
        env=env,
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    # The earlier set is intact; what the killed run left is hidden beside it.
    kept = out if out.exists() else tmp_path / ".out.replaced"  # killed between the renames
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == earlier
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out."))
    assert leftovers, "the kill should have left a staging or replaced folder"
    assert main(predict_args(checkpoint, scene, out, 0.3)) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    fields = provenance_of(out)
    assert {f["threshold"] for f in fields.values()} == {"0.3"}
    assert sorted(p.name for p in out.iterdir()) == [
        "mask.qml",
        "mask.tif",
        "outlines.gpkg",
        "probability.qml",
        "probability.tif",
    ]


def _error_line(capsys) -> str:
    error = capsys.readouterr().err
    assert len(re.findall(r" ERROR ", error)) == 1, error
    return error


def test_disk_full_while_predicting_is_one_line_and_keeps_the_earlier_set(
    checkpoint, tmp_path, geotiff, capsys, monkeypatch
):
    from glaciermap.inference import maps

    scene = geotiff(tmp_path / "scene.tif", reflectance(), **GRID, nodata=np.nan)
    out = tmp_path / "out"
    assert main(predict_args(checkpoint, scene, out, 0.5)) == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()

    def disk_full(self, block):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(maps._BlockWriter, "__call__", disk_full)
    assert main(predict_args(checkpoint, scene, out, 0.3)) == 1
    assert re.search(
        r"disk full while writing \S*out\.staging/\w+\.tif$", _error_line(capsys), re.M
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scene.tif"]


def test_an_occupied_output_folder_or_file_is_refused(checkpoint, tmp_path, geotiff, capsys):
    scene = geotiff(tmp_path / "scene.tif", reflectance(), **GRID, nodata=np.nan)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.docx").write_text("mine")
    assert main(predict_args(checkpoint, scene, tmp_path / "notes", 0.5)) == 1
    error = _error_line(capsys)
    assert re.search(r"output folder \S*notes holds files .*\(thesis\.docx\)", error), error
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["thesis.docx"]
    (tmp_path / "afile").write_text("x")
    assert main(predict_args(checkpoint, scene, tmp_path / "afile", 0.5)) == 1
    assert f"output folder {tmp_path / 'afile'} is an existing file" in _error_line(capsys)
    assert (tmp_path / "afile").read_text() == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_truncated_scene_is_one_line_naming_it_and_writes_nothing(
    checkpoint, tmp_path, geotiff, capsys
):
    scene = geotiff(tmp_path / "scene.tif", reflectance((200, 200)), **GRID, nodata=np.nan)
    data = scene.read_bytes()
    scene.write_bytes(data[: len(data) // 2])
    assert main(predict_args(checkpoint, scene, tmp_path / "out", 0.5)) == 1
    assert re.search(r"scene file \S*scene\.tif", _error_line(capsys))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]
