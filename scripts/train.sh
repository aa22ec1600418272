#!/usr/bin/env bash
# Launch training: scripts/train.sh <config> [key=value ...]
#   <config>: eqr_sudoku, train/eqr_sudoku or config/train/eqr_sudoku.yaml (config/train/*.yaml)
#   scripts/train.sh eqr_sudoku                        # one process (GPU if present, else CPU)
#   NPROC_PER_NODE=8 scripts/train.sh eqr_sudoku       # 8 GPUs on this node
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 NPROC_PER_NODE=8 scripts/train.sh eqr_sudoku   # on each node
# Every launch passes resume=true (a later resume=... on the command line wins): a relaunched job, or
# torchrun restarting its ranks after one was killed (MAX_RESTARTS times, default 3), continues from the
# latest usable checkpoint in checkpoint_path; checkpoint_interval_steps is the work one failure can cost.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 <config> [key=value ...]   (NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MAX_RESTARTS for" \
        "torchrun)"
    echo "configs (config/train/*.yaml): $(cd config/train && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')"
}
if [ $# -lt 1 ]; then
    usage >&2
    exit 2
elif [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
    usage
    exit 0
fi
# A recipe by name (eqr_sudoku), as --config-name takes it (train/eqr_sudoku) or by its file
# (config/train/eqr_sudoku.yaml, a path ending in it, eqr_sudoku.yaml): all name train/eqr_sudoku.
config=${1%.yaml}
config=${config#./}
config=${config##*/config/}
config=${config#config/}
if [[ "$config" != */* && ! -f "config/$config.yaml" ]]; then
    config=train/$config
fi
shift

NPROC_PER_NODE=${NPROC_PER_NODE:-1}
NNODES=${NNODES:-1}
MAX_RESTARTS=${MAX_RESTARTS:-3}
set -- resume=true "$@"
if [ "$NPROC_PER_NODE" -gt 1 ] || [ "$NNODES" -gt 1 ]; then
    # Check the config and the dataset in one process first: a bad input is then one line, not one
    # per rank inside torchrun's failure report.
    WORLD_SIZE=$(( NPROC_PER_NODE * NNODES )) python3 pretrain.py --check --config-name "$config" "$@" \
        > /dev/null
fi
if [ "$NNODES" -gt 1 ]; then
    : "${NODE_RANK:?set NODE_RANK for multi-node runs}" "${MASTER_ADDR:?set MASTER_ADDR for multi-node runs}"
    exec torchrun --nnodes "$NNODES" --node-rank "$NODE_RANK" --master-addr "$MASTER_ADDR" \
        --master-port "${MASTER_PORT:-29500}" --nproc-per-node "$NPROC_PER_NODE" --max-restarts "$MAX_RESTARTS" \
        pretrain.py --config-name "$config" "$@"
elif [ "$NPROC_PER_NODE" -gt 1 ]; then
    exec torchrun --standalone --nproc-per-node "$NPROC_PER_NODE" --max-restarts "$MAX_RESTARTS" \
        pretrain.py --config-name "$config" "$@"
else
    exec python3 pretrain.py --config-name "$config" "$@"
fi
