#!/usr/bin/env bash
# Set up on a fresh machine and run the main demo: `bash scripts/quickstart.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import torch" 2>/dev/null; then
    # Pin the CPU-capable release: plain `torch` would pull a multi-GB CUDA build on Linux.
    python3 -m pip install --quiet "torch==2.13.0"
fi
python3 -m pip install --quiet -r requirements.txt

python3 scripts/smoke_demo.py
