"""End to end: the whole workflow on tests/configs/tiny.yaml (Everest data, 32 px
tiles, two models, one epoch), run by Snakemake in a temporary working directory.

Checks that every stage table and figure exists, that table values are F1s
computed from the saved predictions (one is recomputed here from the rasters),
that the stage winners flow from table to table, that a rerun does nothing and
that changing one model's setting reruns only that model's runs.
"""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from html_tables import read_html_tables

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
TABLES = ("table1_models", "table2_hparams", "table_augmentation", "table3", "table3_long")
FIGURES = (
    "figure2_model_selection",
    "figure3_augmentation",
    "figure4_final_history",
    "overlay_train_oct2000",
    "overlay_test_oct2000",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEST_REGION = 3  # results/regions.tif code (docs/architecture.md)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, snakemake) -> Path:
    """A finished run of the default target on the tiny config."""
    path = tmp_path_factory.mktemp("e2e")
    run = snakemake(path, config=TINY, cores=2)
    (path / "snakemake_output.txt").write_text(run.output)  # for the summary test
    return path


def read_f1(pred_tif: Path, ref_tif: Path, regions_tif: Path) -> float:
    """F1 of a predicted mask in the test region, computed directly from the rasters."""
    with rasterio.open(pred_tif) as p, rasterio.open(ref_tif) as r, rasterio.open(regions_tif) as g:
        pred, ref, regions = p.read(1), r.read(1), g.read(1)
    valid = (pred != 255) & (ref != 255) & (regions == TEST_REGION)
    pred, ref = pred[valid] == 1, ref[valid] == 1
    tp = np.count_nonzero(pred & ref)
    return 2 * tp / (2 * tp + np.count_nonzero(pred & ~ref) + np.count_nonzero(~pred & ref))


def first_model_row(table: pd.DataFrame) -> pd.Series:
    return table[~table["baseline"]].iloc[0]


def test_every_table_and_figure_exists(workdir):
    for name in TABLES:
        assert (workdir / f"results/{name}.csv").stat().st_size > 0
        assert (workdir / f"results/{name}.md").read_text().startswith("|")
    for name in FIGURES:
        assert (workdir / f"results/figures/{name}.png").read_bytes()[:8] == PNG_SIGNATURE


def test_table_values_are_f1_scores(workdir):
    for name in ("table1_models", "table2_hparams", "table_augmentation"):
        scores = pd.read_csv(workdir / f"results/{name}.csv")["selection_score_mean"]
        assert scores.between(0, 1).all(), name
    table3 = pd.read_csv(workdir / "results/table3.csv")
    assert table3["baseline"].sum() == 1 and (~table3["baseline"]).sum() == 1
    assert table3["f1_oct2000_mean"].between(0, 1).all()
    long = pd.read_csv(workdir / "results/table3_long.csv")
    assert set(long["metric"]) == {"f1", "iou", "precision", "recall"}
    assert long["mean"].between(0, 1).all()


def test_table3_f1_is_recomputed_from_the_prediction_raster(workdir):
    results = workdir / "results"
    table3 = pd.read_csv(results / "table3.csv")
    row = first_model_row(table3)
    run = f"{row['model']}/{row['hparams']}/{row['trained_on']}/{row['aug']}/seed1"
    f1 = read_f1(
        results / f"maps/{run}/oct2000/mask.tif",
        results / "masks/oct2000.tif",
        results / "regions.tif",
    )
    assert f1 == pytest.approx(row["f1_oct2000_mean"], abs=1e-9)
    baseline = table3[table3["baseline"]].iloc[0]
    f1 = read_f1(
        results / "maps/baseline/oct2000/oct2000/mask.tif",
        results / "masks/oct2000.tif",
        results / "regions.tif",
    )
    assert f1 == pytest.approx(baseline["f1_oct2000_mean"], abs=1e-9)


def test_each_stage_continues_with_the_previous_winner(workdir):
    results = workdir / "results"
    model = first_model_row(pd.read_csv(results / "table1_models.csv"))["model"]
    table2 = pd.read_csv(results / "table2_hparams.csv")
    assert set(table2[~table2["baseline"]]["model"]) == {model}
    cell = first_model_row(table2)["hparams"]
    augmentation = pd.read_csv(results / "table_augmentation.csv")
    assert set(augmentation[~augmentation["baseline"]]["hparams"]) == {cell}
    aug = first_model_row(augmentation)["aug"]
    final = first_model_row(pd.read_csv(results / "table3.csv"))
    assert (final["model"], final["hparams"], final["aug"]) == (model, cell, aug)


def test_rerun_does_nothing(workdir, dry_run):
    result = dry_run(workdir, TINY)
    assert "Nothing to be done" in result.output and result.counts == {}


def test_changing_one_model_setting_reruns_only_its_runs(workdir, dry_run):
    table1 = pd.read_csv(workdir / "results/table1_models.csv")
    loser = table1[~table1["baseline"]].iloc[-1]["model"]
    config = yaml.safe_load(TINY.read_text())
    config["training"]["models"] = {loser: {"learning_rate": 0.01}}
    changed = workdir / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    output = dry_run(workdir, changed).output
    planned = set(re.findall(r"output: results/runs/(\S+)/metrics\.json", output))
    existing = {
        str(p.parent.relative_to(workdir / "results/runs"))
        for p in (workdir / "results/runs").glob(f"{loser}/**/metrics.json")
    }
    assert planned and planned == existing


def report_parts(html: str) -> tuple[str, dict]:
    """The report's front page (HTML) and its results (path -> record with the file
    as a data URI), which Snakemake's report holds as JavaScript values."""
    front = re.search(r"var workflow_desc = (\".*?\");\n", html)
    results = re.search(r"var results = (\{.*?\});\n", html)
    assert front and results
    return json.loads(front[1]), json.loads(results[1])


def embedded_text(record: dict) -> str:
    return base64.b64decode(record["data_uri"].split("base64,", 1)[1]).decode()


def test_report_bundles_tables_and_figures(workdir, snakemake):
    snakemake(workdir, "--report", "report.html", config=TINY)
    html = (workdir / "report.html").read_text(errors="replace")
    assert "table3.csv" in html and "overlay_test_oct2000.png" in html
    # The front page says which config and data ran and where the outputs are.
    assert "Headline" in html and "LE71400412000304SGS00_RGB.tif" in html
    assert "acquired 2000-10-30" in html and "results/maps/areas.csv" in html


def test_report_shows_the_tables_values(workdir, snakemake):
    if not (workdir / "report.html").exists():
        snakemake(workdir, "--report", "report.html", config=TINY)
    front, results = report_parts((workdir / "report.html").read_text())
    # Table 3 inline on the front page, cell for cell as in its Markdown twin.
    (table3,) = read_html_tables(front)
    markdown = (workdir / "results/table3.md").read_text().splitlines()
    md_rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown]
    assert table3 == [md_rows[0], *md_rows[2:]]
    f1 = pd.read_csv(workdir / "results/table3.csv")["f1_oct2000_mean"]
    column = table3[0].index("F1 oct2000 test")
    assert [row[column].split(" ± ")[0] for row in table3[1:]] == [f"{v:.3f}" for v in f1]
    # Every table is an HTML table in the report; Table 1's scores are those of its CSV.
    tables = {Path(p).name for p, r in results.items() if r["mime_type"] == "text/html"}
    maps = {"areas.html", "area_change.html", "glaciers.html", "glacier_change.html"}
    assert {f"{name}.html" for name in TABLES} | maps == tables
    (glaciers,) = read_html_tables(embedded_text(results["results/maps/glaciers.html"]))
    assert len(glaciers) - 1 == len(pd.read_csv(workdir / "results/maps/glaciers.csv")) > 0
    (table1,) = read_html_tables(embedded_text(results["results/table1_models.html"]))
    scores = pd.read_csv(workdir / "results/table1_models.csv")["selection_score_mean"]
    column = table1[0].index("selection score (val F1)")
    assert [row[column].split(" ± ")[0] for row in table1[1:]] == [f"{v:.3f}" for v in scores]
    # Captions state the seeds of the run and name only tables the run made.
    seeds = yaml.safe_load(TINY.read_text())["seeds"]
    assert (
        f"over the final seeds\n({', '.join(map(str, seeds))};"
        in results["results/table3.html"]["caption"]
    )
    made = {p.name for p in (workdir / "results").glob("table*.csv")}
    listed = set(re.findall(r"results/(table\w+\.csv)", front))
    assert listed == made


def test_the_run_ends_with_table3_and_where_the_maps_are(workdir):
    output = (workdir / "snakemake_output.txt").read_text()
    summary = output[output.index("glaciermap summary") :]
    assert (workdir / "results/table3.md").read_text().strip() in summary
    for mask in (workdir / "results/maps").glob("**/mask.tif"):
        assert f"{mask.parent.relative_to(workdir)}/" in summary


def test_a_training_run_uses_exactly_the_params_snakemake_tracks(workdir):
    """The settings in metrics.json are the train rule's params (Snakemake's record)."""
    metrics_files = sorted((workdir / "results/runs").glob("**/metrics.json"))
    assert metrics_files
    for path in metrics_files:
        name = str(path.relative_to(workdir)).encode()
        record = json.loads((workdir / ".snakemake/metadata" / base64.b64encode(name).decode())
                            .read_text())  # fmt: skip
        (tracked,) = (ast.literal_eval(text) for text in record["params"])
        used = json.loads(path.read_text())["run"]
        assert {key: value for key, value in used.items() if key != "threads"} == tracked


def test_changing_an_inference_setting_reruns_only_the_maps(workdir, dry_run):
    config = yaml.safe_load(TINY.read_text())
    config["inference"]["margin"] = 32
    changed = workdir / "changed_inference.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    rules = set(dry_run(workdir, changed).counts)
    assert "maps_predict" in rules
    assert not rules & {"train", "prepare_tiles", "baseline_fit", "table1_models"}
