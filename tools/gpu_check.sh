#!/usr/bin/env bash
# On a machine with a CUDA GPU: the suite's CUDA cases (tests marked cuda), then bench_sam2's per-frame
# times of PerSAM on vit_b, SAM 2.1 hiera_tiny and hiera_base_plus in fp32, fp16 and bf16 against
# SAM 2.1-tiny's video predictor. Sized to finish in under 5 minutes on one H100; nothing is claimed
# about a GPU without its output.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA GPU here')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this tree, not another install of persam_video
python -m pytest -q -m cuda tests/ -s
python benchmarks/bench_sam2.py --device cuda --frames 6 --threads "$(nproc)" \
    --persam-models vit_b,sam2.1_hiera_tiny,sam2.1_hiera_base_plus --persam-settings exact,fp16/fused,bf16/fused
