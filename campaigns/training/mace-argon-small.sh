#!/usr/bin/env bash
# The small MACE argon model (models/mace-argon-small.model): MACE (16 channels, L = 0,
# correlation 2, two interactions, r_max 6 Å) trained by mace_run_train on the seeds' heating
# ramp of LJ argon (campaigns/train-data-small.yaml: solid and liquid, 10 → 105 K), every 4th
# frame, labelled by the Lennard-Jones reference (energy, forces, stress). CPU minutes.
# Needs the [mace] extra (its own venv: mace-torch pins e3nn==0.4.4). Run from the repository root.
set -euo pipefail
hts-mlff run campaigns/train-data-small.yaml
hts-mlff export-frames runs/train-data-small.zarr -r lj --every 4 -o runs/ar-frames-small.extxyz
mace_run_train \
  --name mace-argon-small --seed 0 --device cpu --default_dtype float64 \
  --train_file runs/ar-frames-small.extxyz --valid_fraction 0.1 \
  --energy_key REF_energy --forces_key REF_forces --stress_key REF_stress \
  --E0s '{18: 0.0}' \
  --model MACE --r_max 6.0 --num_channels 16 --max_L 0 --correlation 2 --num_interactions 2 \
  --loss ef --energy_weight 1.0 --forces_weight 100.0 \
  --batch_size 4 --lr 0.01 --max_num_epochs 12 --eval_interval 2 \
  --model_dir runs/mace-argon-small --checkpoints_dir runs/mace-argon-small/checkpoints \
  --results_dir runs/mace-argon-small/results --log_dir runs/mace-argon-small/logs --save_cpu
cp runs/mace-argon-small/mace-argon-small.model models/mace-argon-small.model
