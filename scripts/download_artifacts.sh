#!/usr/bin/env bash
# Fetch the prebuilt data (locuslab/EqR-data -> data/) and the released checkpoints (locuslab/EqR-model ->
# downloaded_checkpoints/sudoku-extreme/eqr.pth, downloaded_checkpoints/maze-unique/eqr.pth) from the
# Hugging Face Hub, with the reference's options: --skip-data, --data-repo R, --ckpt-repo R,
# --ckpt-pattern GLOB (repeatable), --cache-dir DIR; also --skip-ckpts, --data-dir DIR, --ckpt-dir DIR
# (--with-ckpts and --ckpts-only, the earlier names, still work). HF_TOKEN is honoured.
# The logic lives in dataset/download.py; set PYTHON to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m dataset.download "$@"
