"""Smoke demo of the model core: build each architecture, run a few segments, time them.

    python scripts/smoke_demo.py

Also loads the bundled release-format checkpoint through the evaluation loader and checks
one segment against the reference's recorded logits.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.registry import build_model  # noqa: E402
from utils.checkpoint import load_checkpoint  # noqa: E402
from utils.golden import check_release_fixture  # noqa: E402

DEMO_ARCH = dict(seq_len=81, vocab_size=11, H_cycles=3, L_cycles=6, H_layers=2, L_layers=2, hidden_size=128,
                 num_heads=4, expansion=4, pos_encodings="rope", halt_max_steps=4, halt_exploration_prob=0.1,
                 forward_dtype="float32")
ARCHES = {
    "EqR (mlp_t)": {"name": "eqr@EqRModel", "mlp_t": True},
    "EqR (attention, rope2d)": {"name": "eqr@EqRModel", "pos_encodings": "rope2d", "board_height": 9,
                                "board_width": 9},
    "TRM (mlp_t)": {"name": "trm@TRMModel", "mlp_t": True},
    "HRM (attention)": {"name": "hrm@HRMModel", "H_cycles": 2, "L_cycles": 2},
    "Transformer": {"name": "transformer@TransformerModel", "L_layers": 4, "halt_max_steps": 1},
}


def main() -> None:
    torch.manual_seed(0)
    batch = {
        "inputs": torch.randint(0, 11, (8, 81), dtype=torch.int32),
        "labels": torch.randint(0, 11, (8, 81), dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(8, dtype=torch.int32),
    }
    print(f"{'model':<26}{'params':>10}{'segments':>10}{'ms/segment':>12}  logits      carry")
    for label, overrides in ARCHES.items():
        head = build_model({**DEMO_ARCH, **overrides}).eval()
        params = sum(p.numel() for p in head.parameters())
        carry = head.initial_carry(batch)
        segments = head.model.config.halt_max_steps
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(segments):
                carry, _, _, outputs, _ = head(carry, batch, return_keys=("logits",))
        ms = (time.perf_counter() - start) * 1e3 / segments
        print(f"{label:<26}{params:>10,}{segments:>10}{ms:>12.1f}  {tuple(outputs['logits'].shape)}  "
              f"{tuple(carry.z_H.shape)}")

    fixture = ROOT / "tests" / "fixtures" / "release_format_sudoku.pth"
    loaded = load_checkpoint(fixture)
    worst = max(r.error for r in check_release_fixture(fixture))
    print(f"\nrelease-format checkpoint: step {loaded.step}, EMA weights: {loaded.used_ema}, "
          f"max relative error vs reference logits: {worst:.1e}")


if __name__ == "__main__":
    main()
