# Helper functions shared by the rule files (path builders, the run matrix,
# readers of stage winners). The only place for Python logic in the workflow.
#
# The study runs in stages; each stage's runs are one slice of the matrix
# run = (model, hparams, dates, aug, seed) (glaciermap.runs.RunKey):
#   model selection   every model         x base hparams x all dates x noaug    x seeds
#   hyperparameters   winner model        x grid cells   x all dates x noaug    x seeds
#   augmentation      winner model        x best cell    x all dates x compare  x seeds
#   final             winner, cell, aug   x (each date and/or all dates)        x seeds
# A stage's winner is read from the stage's checkpoint table once it is written
# (criterion and tie-break of glaciermap.reporting.tables), unless the config
# pins it. Runs shared by two stages (the base cell of the grid, the noaug run
# of the augmentation stage, the final all-dates run) have one path and are
# trained once.
#
# Chip datasets (data.chips, docs/chips.md) carry labels like dates: a training
# chip set joins the "all dates" of every stage (oct2000+alps) and, with its own
# validation chips, "each" of the final stage; an external test set (split:
# test) is scored by every final run, seed ensemble and baseline (Table 3).
#
# Building the DAG imports no torch (a dry run of the study stays well under
# 10 s): run names come from glaciermap.runs, file paths from glaciermap.paths,
# settings from glaciermap.training.settings, glaciermap.inference.settings and
# glaciermap.data.chip_dataset (defaults from glaciermap.schema), none of which
# imports torch, pandas, geopandas or rasterio (tests/test_settings_defaults.py);
# the table readers are imported when a checkpoint table exists. The config
# checks (glaciermap.config, opening every input's header) and the preparation
# rules' input functions (glaciermap.data.prepare) do load rasterio and geopandas.
import functools
import itertools

from glaciermap.channels import needs_dem
from glaciermap.data.chip_dataset import ChipDataset, dataset_inputs
from glaciermap.paths import (
    baseline_rules,
    benchmarks,
    chip_eval_file,
    eval_file,
    logs,
    map_file,
    reference_mask,
    regions_file,
    results,
    run_file,
    scene_file,
    tile_file,
    validity_file,
)
from glaciermap.runs import (
    ENSEMBLE_PATTERN,
    NO_AUG,
    RUN_PATTERN,
    WILDCARD_PATTERNS,
    HParams,
    RunKey,
    join_dates,
    parse_label,
    split_dates,
)
from glaciermap.inference.settings import prediction_params
from glaciermap.training.settings import RunSettings
from glaciermap.utils.params import canonical

DATES = list(config["data"].get("scenes", {}))
# A chip-only config (no data.scenes, docs/chips.md): no scene maps, areas or overlays.
HAS_SCENES = bool(DATES)
# The model's input channels (glaciermap.channels) and the DEM their terrain
# channels come from (None when no channel needs one; then no job reads it).
CHANNELS = list(config["data"]["channels"])
DEM = config["data"].get("dem") if needs_dem(CHANNELS) else None
DEM_FILES = [DEM["file"]] if DEM else []
CHIPS = {
    label: ChipDataset.from_config(label, block, CHANNELS, DEM)
    for label, block in config["data"].get("chips", {}).items()
}
TRAINING_CHIPS = [label for label, chips in CHIPS.items() if chips.trains]
# Geographic k-fold cross-validation (split: kfold, docs/chips.md): every run of the
# matrix is repeated per fold like per seed (run ...-fold{k}); one fold count for all.
KFOLD_CHIPS = [label for label, chips in CHIPS.items() if chips.cross_validated]
FOLDS = list(range(CHIPS[KFOLD_CHIPS[0]].folds)) if KFOLD_CHIPS else [None]
EXTERNAL_TESTS = [label for label, chips in CHIPS.items() if not chips.trains]
# Every label a run can train on; "all dates" trains on all of them.
ALL_DATES = join_dates(DATES + TRAINING_CHIPS)
SEEDS = list(config["seeds"])
FINAL_SEEDS = list(config["final"]["seeds"] or SEEDS)

RUN = RUN_PATTERN
ENSEMBLE = ENSEMBLE_PATTERN  # a final configuration's seeds together
# With --software-deployment-method conda every job runs in this environment
# (pinned like pyproject.toml; relative to the rule files).
CONDA_ENV = "../envs/glaciermap.yaml"


wildcard_constraints:
    **WILDCARD_PATTERNS,
    split="train|val|test",
    region="train|test",
    chips=WILDCARD_PATTERNS["date"],
    fold="[0-9]+",


# ---------------------------------------------------------------- paths


def run_name(model, hparams, dates, aug, seed, fold=None):
    """The ``{run}`` of docs/architecture.md (glaciermap.runs.RunKey.path)."""
    key = RunKey(model, HParams.from_slug(hparams), split_dates(dates), aug, seed, fold)
    return key.path


def run_fold(wildcards):
    """The fold of the run of ``wildcards`` (None outside cross-validation)."""
    return RunKey.from_wildcards(wildcards).fold


def metrics_files(runs):
    return [run_file(run, "metrics.json") for run in runs]


def tile_store(label, name, fold=None):
    """A file of the tile store of a scene date or of a chip dataset (of fold ``fold``
    for a kfold dataset; without a fold, its whole-dataset split)."""
    if label in KFOLD_CHIPS and fold is not None:
        return tile_file("chips", label, f"fold{fold}/{name}")
    return tile_file("chips" if label in CHIPS else "tiles", label, name)


def tile_files(dates, split, fold=None):
    """Tile stores of one split for the '+'-joined ``dates`` (scenes, chip sets) of a run."""
    return [tile_store(label, f"{split}.npz", fold) for label in split_dates(dates)]


def stats_files(dates, fold=None):
    return [tile_store(label, "stats.json", fold) for label in split_dates(dates)]


def fold_inventory(wildcards):
    """The inventory of the run's fold when ``{chips}`` is its kfold dataset: the chips
    its out-of-fold scores are taken on (none otherwise)."""
    fold = run_fold(wildcards)
    if wildcards.chips not in KFOLD_CHIPS or fold is None:
        return []
    return [tile_file("chips", wildcards.chips, f"fold{fold}/chips.csv")]


@functools.cache
def chip_inputs(label):
    """``images``, existing ``masks`` and ``outlines`` files of chip dataset ``label``."""
    return dataset_inputs(CHIPS[label])


def chip_eval_files(runs):
    """Scores of ``runs`` (``{run}``, ``ensemble/...`` or ``baseline/...``) on every
    external chip test set."""
    return [chip_eval_file(run, label) for run in runs for label in EXTERNAL_TESTS]


def eval_files(runs, dates=DATES):
    return [eval_file(run, date) for run in runs for date in dates]


# ---------------------------------------------------------------- settings


def hparams_slug(block):
    """``{dropout, activation, pooling}`` mapping -> the ``{hparams}`` wildcard."""
    return HParams.from_mapping(block).slug


def run_settings(wildcards):
    """The resolved settings of the training run of ``wildcards``."""
    return RunSettings.from_config(config, RunKey.from_wildcards(wildcards))


def training_params(wildcards):
    """Everything the run uses (training.models.<model> overrides applied), so that
    changing a setting reruns exactly the runs it applies to."""
    return run_settings(wildcards).to_params()


def train_runtime_minutes(wildcards, attempt):
    """Wall-time request of a training job, for cluster executors (minutes)."""
    return (20 + 2 * run_settings(wildcards).epochs) * attempt


# ---------------------------------------------------------------- matrix and winners


def selection_runs():
    stage = config["model_selection"]
    cell = hparams_slug(stage["hparams"])
    return [
        run_name(model, cell, ALL_DATES, NO_AUG, seed, fold)
        for model in stage["models"]
        for seed in SEEDS
        for fold in FOLDS
    ]


def best_model():
    """The architecture of the later stages: pinned, or best of Table 1."""
    pinned = config["model_selection"]["winner"]
    if pinned:
        return pinned
    table = checkpoints.table1_models.get().output.csv
    from glaciermap.reporting.tables import winner_model

    return winner_model(table)


def grid_cells():
    grid = config["hparam_grid"]
    cells = itertools.product(grid["dropout"], grid["activation"], grid["pooling"])
    return [HParams(*cell).slug for cell in cells]


def grid_runs():
    model = best_model()
    return [
        run_name(model, cell, ALL_DATES, NO_AUG, seed, fold)
        for cell in grid_cells()
        for seed in SEEDS
        for fold in FOLDS
    ]


def best_hparams():
    """The hyperparameter cell of the later stages: pinned, or best of Table 2."""
    pinned = config["hparam_grid"]["winner"]
    if pinned:
        return hparams_slug(pinned)
    table = checkpoints.table2_hparams.get().output.csv
    from glaciermap.reporting.tables import winner_hparams

    return winner_hparams(table)


def augmentation_runs():
    model, cell = best_model(), best_hparams()
    return [
        run_name(model, cell, ALL_DATES, aug, seed, fold)
        for aug in config["augmentation"]["compare"]
        for seed in SEEDS
        for fold in FOLDS
    ]


def best_augmentation():
    """The augmentation mode of the final models: pinned, or best of the augmentation table."""
    pinned = config["augmentation"]["winner"]
    if pinned:
        return pinned
    table = checkpoints.table_augmentation.get().output.csv
    from glaciermap.reporting.tables import winner_aug

    return winner_aug(table)


def final_training_dates():
    """Each date (and each chip set with validation chips) alone and/or all together,
    without repeating a one-label 'all'."""
    wanted = []
    if "each" in config["final"]["train_on"]:
        wanted.extend(DATES)
        wanted.extend(label for label in TRAINING_CHIPS if CHIPS[label].split != "train")
    if "all" in config["final"]["train_on"]:
        wanted.append(ALL_DATES)
    return list(dict.fromkeys(wanted))


def final_runs():
    """Every final run (``{run}`` strings). Call it only inside input functions:
    it waits for the stage checkpoints."""
    model, cell, aug = best_model(), best_hparams(), best_augmentation()
    return [
        run_name(model, cell, dates, aug, seed, fold)
        for dates in final_training_dates()
        for seed in FINAL_SEEDS
        for fold in FOLDS
    ]


# ---------------------------------------------------------------- targets


def stage_tables():
    """Tables of the stages that are not pinned in the config, plus Table 3."""
    tables = []
    if not config["model_selection"]["winner"]:
        tables.append(results("table1_models.csv"))
    if not config["hparam_grid"]["winner"]:
        tables.append(results("table2_hparams.csv"))
    if not config["augmentation"]["winner"]:
        tables.append(results("table_augmentation.csv"))
    tables.append(results("table3.csv"))
    return tables


def baseline_eval_files():
    """The threshold baseline fitted on each final training set, scored on every date."""
    return [
        eval_file(f"baseline/{dates}", date)
        for dates in final_training_dates()
        for date in DATES
    ]


def final_ensembles():
    """``ensemble/{model}/{hparams}/{dates}/{aug}`` of each final model: its seeds'
    mean probability; there are ensembles with two or more seeds (not yet per fold:
    none in a cross-validated config)."""
    if len(FINAL_SEEDS) < 2 or KFOLD_CHIPS:
        return []
    return list(dict.fromkeys(RunKey.parse(run).ensemble_label for run in final_runs()))


def ensemble_checkpoints(wildcards):
    """``best.pt`` of every seed of the ensemble of ``wildcards``."""
    fields = (wildcards.model, wildcards.hparams, wildcards.dates, wildcards.aug)
    return [run_file(run_name(*fields, seed), "best.pt") for seed in FINAL_SEEDS]


def external_eval_files():
    """Every final run, final ensemble and baseline scored on every external test set."""
    baselines = [f"baseline/{dates}" for dates in final_training_dates()]
    out_of_fold = [
        chip_eval_file(run, label)
        for run in final_runs()
        for label in RunKey.parse(run).dates
        if label in KFOLD_CHIPS
    ]
    return chip_eval_files([*final_runs(), *final_ensembles(), *baselines]) + out_of_fold


def history_runs():
    """Runs of Figure 4: the final runs on all dates (every final run if there are none)."""
    runs = [run for run in final_runs() if RunKey.parse(run).dates_label == ALL_DATES]
    return runs or final_runs()


def area_maps():
    """The maps the area tables sum: one record (run, date, mask, outlines) per final
    run and date, and per final seed ensemble and date (run, date, mask, outlines,
    uncertainty, members), so that the script pairs files by name, not by list order."""
    records = [
        {
            "run": run,
            "date": date,
            "mask": map_file(run, date, "mask.tif"),
            "outlines": map_file(run, date, "outlines.gpkg"),
        }
        for run in final_runs()
        for date in DATES
    ]
    for ensemble in final_ensembles():
        members = [run for run in final_runs() if RunKey.parse(run).ensemble_label == ensemble]
        records += [
            {
                "run": ensemble,
                "date": date,
                "mask": map_file(ensemble, date, "mask.tif"),
                "outlines": map_file(ensemble, date, "outlines.gpkg"),
                "uncertainty": map_file(ensemble, date, "uncertainty.tif"),
                "members": members,
            }
            for date in DATES
        ]
    return records


def change_figure_maps():
    """What the area-change figure draws: the seed ensemble of the overlay model when
    there are ensembles (its masks and uncertainty), else the overlay run (its masks
    and outlines); one entry per change date."""
    run = overlay_run()
    ensemble = RunKey.parse(run).ensemble_label
    if ensemble in final_ensembles():
        return {
            "run": ensemble,
            "masks": [map_file(ensemble, date, "mask.tif") for date in CHANGE_DATES],
            "outlines": [],
            "uncertainty": [
                map_file(ensemble, date, "uncertainty.tif") for date in CHANGE_DATES
            ],
        }
    return {
        "run": run,
        "masks": [map_file(run, date, "mask.tif") for date in CHANGE_DATES],
        "outlines": [map_file(run, date, "outlines.gpkg") for date in CHANGE_DATES],
        "uncertainty": [],
    }


def overlay_run():
    """The model drawn in the overlay figures: the first seed of the Figure 4 runs."""
    return history_runs()[0]


def scene_map_targets():
    """The area tables and change figure of the scene maps (none in a chip-only config)."""
    if not HAS_SCENES:
        return []
    return [
        results("maps/areas.csv"),
        results("maps/area_change.csv"),
        results("figures/area_change.png"),
        results("maps/glaciers.csv"),
        results("maps/glacier_change.csv"),
        results("figures/glacier_change.png"),
    ]


def figure_files():
    figures = [
        results("figures/figure4_final_history.png"),
        *expand(
            results("figures/overlay_{region}_{date}.png"), region=("train", "test"), date=DATES
        ),
    ]
    if not config["model_selection"]["winner"]:
        figures.append(results("figures/figure2_model_selection.png"))
    if not config["augmentation"]["winner"]:
        figures.append(results("figures/figure3_augmentation.png"))
    return figures


# ---------------------------------------------------------------- seed ensembles


def ensemble_eval_files(dates=DATES):
    """Scores of the final ensembles' masks (e.g. Table 3's ensemble rows), one per date;
    their ``run`` field is the ensemble label."""
    return eval_files(final_ensembles(), dates)


# ---------------------------------------------------------------- per glacier


def glacier_map_record(name, date):
    """What the per-glacier products read of map ``name`` (a run, ``ensemble/...`` or
    ``baseline/...``) on ``date``: mask, probability, uncertainty, the members' masks."""
    label = parse_label(name)
    record = {"run": name, "date": date, "mask": map_file(name, date, "mask.tif")}
    if label.kind != "baseline":
        record["probability"] = map_file(name, date, "probability.tif")
    if label.kind == "ensemble":
        fields = (label.model, label.hparams, label.dates, label.aug)
        members = [run_name(*fields, seed) for seed in FINAL_SEEDS]
        record["uncertainty"] = map_file(name, date, "uncertainty.tif")
        record["members"] = members
        record["member_masks"] = [map_file(run, date, "mask.tif") for run in members]
    return record


def glacier_maps():
    """Every map the per-glacier tables split: final runs, seed ensembles and the
    threshold baselines, on every date."""
    baselines = [f"baseline/{dates}" for dates in final_training_dates()]
    names = [*final_runs(), *final_ensembles(), *baselines]
    return [glacier_map_record(name, date) for name in names for date in DATES]


def glacier_outline_files():
    """Per-glacier outlines of every map, and the QGIS style of each of its layers."""
    files = []
    for record in glacier_maps():
        name, date = record["run"], record["date"]
        files.append(map_file(name, date, "glaciers.gpkg"))
        layers = [layer for layer in ("mask", "probability", "uncertainty") if layer in record]
        files += [map_file(name, date, f"{layer}.qml") for layer in layers]
    return files
