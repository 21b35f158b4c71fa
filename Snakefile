# glaciermap: map glaciers from satellite scenes and glacier outlines.
# Users run `snakemake --cores 2 results/table3.csv` (demo) or
# `snakemake --profile slurm --configfile configs/study.yaml` (cluster).
from snakemake.utils import min_version, validate

from glaciermap.config import check_config, schema_path

min_version("9.0")


configfile: "config.yaml"


validate(config, schema_path())
check_config(config)


include: "rules/common.smk"
include: "rules/prepare.smk"
