#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment of glaciermap.yaml: install
# the package from the checkout this file is in, without touching the pinned
# dependencies the environment already has.
set -euo pipefail
python -m pip install --no-deps "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
