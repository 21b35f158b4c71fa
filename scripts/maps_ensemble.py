"""Snakemake adapter: a seed ensemble's maps of one date (rule maps_ensemble)."""

import torch

from glaciermap.inference.maps import predict_scene_maps
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    predict_scene_maps(
        list(snakemake.input.checkpoints),
        snakemake.input.scene,
        snakemake.output.probability,
        snakemake.output.mask,
        snakemake.params.inference,
        device=snakemake.params.device,
        uncertainty_path=snakemake.output.uncertainty,
    )
