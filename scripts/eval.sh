#!/usr/bin/env bash
# Evaluate a checkpoint: scripts/eval.sh CHECKPOINT [key=value ...]
#   scripts/eval.sh downloaded_checkpoints/sudoku-extreme/eqr.pth depths=[16,64,256] different_init=[1,8]
#   NPROC_PER_NODE=8 scripts/eval.sh CHECKPOINT ...      # torchrun, metrics summed over ranks
# Options are those of evaluate.py (docs/evaluation.md); set PYTHON to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [[ "$1" == *=* ]]; then
    echo "usage: $0 CHECKPOINT [key=value ...]" >&2
    exit 2
fi
checkpoint=$1
shift

NPROC_PER_NODE=${NPROC_PER_NODE:-1}
if [ "$NPROC_PER_NODE" -gt 1 ]; then
    exec torchrun --standalone --nproc-per-node "$NPROC_PER_NODE" evaluate.py "checkpoint=$checkpoint" "$@"
fi
exec "${PYTHON:-python3}" evaluate.py "checkpoint=$checkpoint" "$@"
