#!/usr/bin/env bash
# Set up and run the whole pipeline on a small embedded default: `bash scripts/quickstart.sh`.
# Builds 9x9 perfect mazes locally (no network), trains a small EqR (about 7 minutes on 2 CPU cores,
# faster on a GPU), evaluates a depth x breadth sweep, prints the table and the trivial baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import torch" 2>/dev/null; then
    # Pin the CPU-capable release: plain `torch` would pull a multi-GB CUDA build on Linux.
    python3 -m pip install --quiet "torch==2.13.0"
fi
python3 -m pip install --quiet -r requirements.txt

DATA=data/maze-9x9-quickstart
RUN=checkpoints/EqR/eqr_quickstart

echo "== 1/3 dataset: $DATA"
if [ ! -d "$DATA" ]; then
    python3 -m dataset.build_maze_unique_dataset --output-dir "$DATA" --grid-size 9 \
        --train-samples 2000 --test-samples 200 --min-path-length 8 --max-path-length 30 --seed 0
fi

echo "== 2/3 training: config/train/eqr_quickstart.yaml -> $RUN"
python3 pretrain.py --config-name train/eqr_quickstart resume=true checkpoint_path="$RUN"

echo "== 3/3 evaluation: depth D in {1, 2, 4, 8, 16} x breadth B in {1, 4}"
python3 evaluate.py checkpoint="$RUN/step_1500.pth" dataset_data_path="$DATA" \
    depths=[1,2,4,8,16] different_init=[1,4] convergence_top_k=1 max_rows=64 \
    output_dir="$RUN/eval"
python3 -m dataset.baselines "$DATA"
