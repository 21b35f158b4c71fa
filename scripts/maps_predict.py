"""Snakemake adapter: blended whole-scene prediction of one run on one date (rule maps_predict)."""

import torch

from glaciermap.inference.maps import predict_scene_maps
from glaciermap.utils.jobs import job

with job(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    predict_scene_maps(
        snakemake.input.checkpoint,
        snakemake.input.scene,
        snakemake.output.probability,
        snakemake.output.mask,
        snakemake.params.inference,
        device=snakemake.params.device,
    )
