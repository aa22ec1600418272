"""Compare this implementation with golden tensors recorded from the reference implementation.

Three fixture formats are understood:
- model fixtures (`kind`, `config`, `state_dict`, `z_H0`, `z_L0`, `segments`, ...): build the
  model through the registry, load the weights through the checkpoint loader, run the
  recorded number of segments from the recorded carry (no reset), compare every tensor;
  then, "teacher-forced", run each later segment from the reference's own previous carry,
  which measures one segment's error without the recurrence amplifying earlier rounding;
- release-format checkpoints `X.pth` with a sibling `X.expected.pt`: load through the
  evaluation path (EMA weights) and compare one segment;
- breadth-metric fixtures (`logit_trajectory`, `metrics`): recompute the metrics.

The error of a tensor is max|ours - ref| / max|ref| (scale-relative, so exact zeros in the
reference do not blow it up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.losses import softmax_cross_entropy, stablemax_cross_entropy
from models.registry import build_model
from utils.breadth_metrics import breadth_metrics, convergence_scores
from utils.checkpoint import load_checkpoint, load_model_state

KIND_TO_ARCH = {
    "eqr": "eqr@EqRModel",
    "trm": "trm@TRMModel",
    "hrm": "hrm@HRMModel",
    "transformer": "transformer@TransformerModel",
}
EXPECTED_SUFFIX = ".expected.pt"


@dataclass
class Comparison:
    name: str
    error: float

    def passed(self, tol: float) -> bool:
        return self.error <= tol


class FixtureError(ValueError):
    """The file is not a fixture in any known format."""


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    if ours.shape != ref.shape:
        return float("inf")
    ours, ref = ours.detach().double(), ref.detach().double()
    scale = ref.abs().max().clamp_min(1e-12)
    return ((ours - ref).abs().max() / scale).item()


def _batch(fixture: dict[str, Any]) -> dict[str, torch.Tensor]:
    batch = {"inputs": fixture["inputs"]}
    if "puzzle_identifiers" in fixture:
        batch["puzzle_identifiers"] = fixture["puzzle_identifiers"]
    return batch


@torch.no_grad()
def _segment(inner: torch.nn.Module, z_H: torch.Tensor, z_L: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
    z_H, z_L, logits, q_halt, q_continue = inner(z_H, z_L, batch)
    return {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue, "z_H": z_H, "z_L": z_L}


def _run_segments(inner: torch.nn.Module, fixture: dict[str, Any], count: int) -> list[dict[str, torch.Tensor]]:
    out = {"z_H": fixture["z_H0"], "z_L": fixture["z_L0"]}
    results = []
    for _ in range(count):
        out = _segment(inner, out["z_H"], out["z_L"], _batch(fixture))
        results.append(out)
    return results


def _compare(prefix: str, got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> list[Comparison]:
    return [Comparison(f"{prefix}.{key}", relative_error(got[key], tensor) if key in got else float("inf"))
            for key, tensor in ref.items()]


def check_model_fixture(fixture: dict[str, Any]) -> list[Comparison]:
    config = dict(fixture["config"])
    if "name" not in config:
        if fixture.get("kind") not in KIND_TO_ARCH:
            raise FixtureError(f"unknown kind {fixture.get('kind')!r}; known: {sorted(KIND_TO_ARCH)}")
        config["name"] = KIND_TO_ARCH[fixture["kind"]]
    head = build_model(config)
    load_model_state(head.model, fixture["state_dict"], strict=True, source="fixture state_dict")
    inner = head.model.inner.eval()
    segments = fixture["segments"]
    ours = _run_segments(inner, fixture, len(segments))
    results = []
    for i, (got, ref) in enumerate(zip(ours, segments, strict=True)):
        results += _compare(f"segments[{i}]", got, ref)
    for i in range(1, len(segments)):
        got = _segment(inner, segments[i - 1]["z_H"], segments[i - 1]["z_L"], _batch(fixture))
        results += _compare(f"teacher_forced.segments[{i}]", got, segments[i])
    for key, fn in (("stablemax_ce", stablemax_cross_entropy), ("softmax_ce", softmax_cross_entropy)):
        if key in fixture:
            results.append(Comparison(key, relative_error(fn(ours[0]["logits"], fixture["labels"]), fixture[key])))
    return results


def check_release_fixture(path: Path) -> list[Comparison]:
    expected_path = path.with_name(path.name.removesuffix(".pth") + EXPECTED_SUFFIX)
    if not expected_path.is_file():
        raise FixtureError(f"{path}: release-format checkpoint without its {expected_path.name}")
    expected = torch.load(expected_path, weights_only=True)
    loaded = load_checkpoint(path, use_ema=True, data_fields={"seq_len": expected["inputs"].shape[1]})
    (got,) = _run_segments(loaded.act_model.inner.eval(), expected, 1)
    return [
        Comparison("ema_logits", relative_error(got["logits"], expected["ema_logits"])),
        Comparison("ema_q_halt_logits", relative_error(got["q_halt_logits"], expected["ema_q_halt_logits"])),
    ]


def check_breadth_fixture(fixture: dict[str, Any]) -> list[Comparison]:
    scores = convergence_scores(fixture["logit_trajectory"], int(fixture["window"]))
    N, B = fixture["labels"].shape[0], int(fixture["B"])
    results = [Comparison("scores", relative_error(scores.view(N, B), fixture["scores"]))]
    metrics = breadth_metrics(fixture["preds"], fixture["labels"], B, scores, int(fixture["top_k"]))
    for key, ref in fixture["metrics"].items():
        got = metrics.get(key)
        error = float("inf") if got is None else abs(got - ref) / max(abs(ref), 1e-12)
        results.append(Comparison(f"metrics[{key}]", error))
    return results


def check_file(path: str | Path) -> list[Comparison] | None:
    """Check one fixture file; None for a `.expected.pt` companion (checked with its `.pth`)."""
    path = Path(path)
    if path.name.endswith(EXPECTED_SUFFIX):
        if not path.with_name(path.name.removesuffix(EXPECTED_SUFFIX) + ".pth").is_file():
            raise FixtureError(f"{path}: companion file without its release-format .pth")
        return None
    if path.suffix == ".pth":
        return check_release_fixture(path)
    if path.suffix != ".pt":
        raise FixtureError(f"{path}: not a tensor fixture (expected .pt or .pth)")
    fixture = torch.load(path, weights_only=True)
    if not isinstance(fixture, dict):
        raise FixtureError(f"{path}: not a fixture dict")
    if "segments" in fixture and "state_dict" in fixture:
        return check_model_fixture(fixture)
    if "logit_trajectory" in fixture and "metrics" in fixture:
        return check_breadth_fixture(fixture)
    raise FixtureError(f"{path}: unknown fixture format (keys: {sorted(fixture)})")
