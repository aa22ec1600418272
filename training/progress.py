"""What a training run reports: the metrics of a logging window, reduced across ranks, and its console line.

Loss heads return sums (losses over rows, counts over the rows that halted); a window adds the
steps' sums, and only the reduction divides: losses per sample of the global batch, rates per
halted row. While no row has halted in the window the rates are not reported ("n/a").
"""

from __future__ import annotations

import torch

from utils.distributed import all_reduce_sum_


class MetricWindow:
    """Per-step metric sums since the last report."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.steps += 1

    def reduce(self, global_batch_size: int) -> dict[str, float]:
        """`train/*` values: losses per sample, rates over halted rows, grad norm averaged over the steps."""
        sums = dict(self.sums)
        grad_norm = sums.pop("grad_norm").item() / self.steps
        keys = sorted(sums)
        values = [sums[k].double().reshape(1) for k in keys]
        all_reduce_sum_(values)
        summed = dict(zip(keys, (v.item() for v in values), strict=True))
        count = summed.pop("count")
        samples = global_batch_size * self.steps
        out = {f"train/{k}": v / samples if k.endswith("loss") else v / count
               for k, v in summed.items() if k.endswith("loss") or count > 0}
        out["train/count"] = count
        out["train/grad_norm"] = grad_norm
        return out


def format_summary(step: int, total: int, m: dict[str, float]) -> str:
    """One console line; rates over halted rows read "n/a" while no row has halted yet."""

    def value(key: str, spec: str) -> str:
        return format(m[f"train/{key}"], spec) if f"train/{key}" in m else "n/a"

    return (f"step {step}/{total}  lm_loss {value('lm_loss', '.4f')}  q_halt_loss {value('q_halt_loss', '.4f')}  "
            f"acc {value('accuracy', '.4f')}  exact {value('exact_accuracy', '.4f')}  steps {value('steps', '.2f')}  "
            f"lr {m['train/lr']:.2e}  |g| {m['train/grad_norm']:.3f}  {m['train/samples_per_s']:.0f} samples/s")
