# glaciermap: map glaciers from satellite scenes and glacier outlines.
# Users run `snakemake --cores 2 results/table3.csv` (demo) or
# `snakemake --profile slurm --configfile configs/study.yaml` (cluster).
from snakemake.logging import logger
from snakemake.utils import min_version, validate

import copy

from glaciermap.config import check_config, validate_config
from glaciermap.reporting.summary import workflow_summary
from glaciermap.schema import schema_path

min_version("9.0")


# A config given with --configfile replaces the demo config instead of being
# merged into it (merging would add the demo's scenes to the study's).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# glaciermap's messages first (numbers YAML reads as text, repeated seeds), on a copy:
# Snakemake's validation below fills the defaults as it always did.
validate_config(copy.deepcopy(config))
validate(config, schema_path())
check_config(config)


# The front page of `snakemake --report report.html`.
report: "report/workflow.rst"


# With --software-deployment-method apptainer every job runs in this image.
container: config["container"]


include: "rules/common.smk"
include: "rules/acquire.smk"
include: "rules/chips.smk"
include: "rules/train.smk"
include: "rules/select.smk"
include: "rules/evaluate.smk"
include: "rules/ensemble.smk"
include: "rules/report.smk"


# Scene preparation and whole-scene maps need data.scenes; a chip-only config
# (docs/chips.md) has neither, and its report says so.
if HAS_SCENES:

    include: "rules/prepare.smk"
    include: "rules/maps.smk"
    include: "rules/glaciers.smk"


rule all:
    default_target: True
    input:
        stage_tables(),
        figure_files(),
        scene_map_targets(),
        # after the stage winners are known (checkpoints), as an input function
        lambda wc: glacier_outline_files() if HAS_SCENES else [],


# After a successful run the log ends with the headline table and where the maps are.
onsuccess:
    summary = workflow_summary()
    if summary:
        logger.info(summary)
