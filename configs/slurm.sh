#!/bin/bash
# Pretraining on several nodes under SLURM: srun starts one task per GPU on every node and
# Lightning reads its ranks from SLURM's variables (its SLURM environment), so the command is the
# one-node command with the number of nodes and GPUs given.
#   sbatch configs/slurm.sh configs/simclr_imagenet.yaml [more fit options]
# The learning rate of the ImageNet configs is given per 256 images (lr_batch_size) and scaled to
# data.batch_size × GPUs × nodes, so it stays right whatever --nodes and --gpus-per-node are.
# At the time limit SLURM sends SIGTERM (120 s before, --signal): the run saves last.ckpt at the
# next optimizer step and stops; resubmit the same job with --ckpt_path last to continue exactly.
#SBATCH --job-name=contrast
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=10
#SBATCH --time=48:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=%x-%j.out
set -euo pipefail
config=${1:?usage: sbatch configs/slurm.sh CONFIG [fit options]}
shift
srun contrast fit --config "$config" \
    --trainer.num_nodes "$SLURM_JOB_NUM_NODES" --trainer.devices "$SLURM_NTASKS_PER_NODE" \
    --data.num_workers "$((SLURM_CPUS_PER_TASK - 2))" "$@"
