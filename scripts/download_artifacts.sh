#!/usr/bin/env bash
# Fetch prebuilt data (and with --with-ckpts / --ckpts-only the released checkpoints)
# from the Hugging Face Hub. Options: --data-dir DIR, --ckpt-dir DIR; HF_TOKEN is honoured.
# The logic lives in dataset/download.py; set PYTHON to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m dataset.download "$@"
