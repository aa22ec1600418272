#!/usr/bin/env bash
# Launch training: scripts/train.sh <config> [key=value ...]
#   scripts/train.sh eqr_sudoku                        # one process (GPU if present, else CPU)
#   NPROC_PER_NODE=8 scripts/train.sh eqr_sudoku       # 8 GPUs on this node
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 NPROC_PER_NODE=8 scripts/train.sh eqr_sudoku   # on each node
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
    echo "usage: $0 <config: eqr_sudoku|trm_sudoku|eqr_maze_unique|trm_maze_unique> [key=value ...]" >&2
    exit 2
fi
config=$1
shift

NPROC_PER_NODE=${NPROC_PER_NODE:-1}
NNODES=${NNODES:-1}
if [ "$NNODES" -gt 1 ]; then
    : "${NODE_RANK:?set NODE_RANK for multi-node runs}" "${MASTER_ADDR:?set MASTER_ADDR for multi-node runs}"
    exec torchrun --nnodes "$NNODES" --node-rank "$NODE_RANK" --master-addr "$MASTER_ADDR" \
        --master-port "${MASTER_PORT:-29500}" --nproc-per-node "$NPROC_PER_NODE" \
        pretrain.py --config-name "train/$config" "$@"
elif [ "$NPROC_PER_NODE" -gt 1 ]; then
    exec torchrun --standalone --nproc-per-node "$NPROC_PER_NODE" pretrain.py --config-name "train/$config" "$@"
else
    exec python3 pretrain.py --config-name "train/$config" "$@"
fi
