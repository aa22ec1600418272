"""Two gloo processes evaluating their slices give the same metrics as one process."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.multiprocessing as mp

from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig
from evaluation.engine import EvalResult, run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime, Selection
from models.registry import build_model
from tests.conftest import free_port, gloo_rank, tiny_arch

ARCH = tiny_arch("trm@TRMModel", seq_len=36, vocab_size=6)
# TRM restarting from its own fixed init: no random draws, so how the rows are sliced cannot matter.
PLAN = EvalPlan([1, 3], breadth=Breadth(restarts=2, restart_std=None), selection=Selection(top_k=1, window=2),
                counting="both", outputs=Outputs(save=("preds", "inputs")), runtime=Runtime(progress=False))


def _evaluate(data: Path, weights: Path, rank: int, world: int) -> EvalResult:
    model = build_model(ARCH).model
    model.load_state_dict(torch.load(weights, weights_only=True))
    dataset = PuzzleDataset(
        PuzzleDatasetConfig(data_paths=[data], global_batch_size=4, rank=rank, world_size=world, test_set_mode=True),
        split="test",
    )
    return run_evaluation(model.eval(), dataset.test_batches(), PLAN)


def _worker(rank: int, port: int, data: Path, weights: Path, out: Path) -> None:
    with gloo_rank(rank, port):
        result = _evaluate(data, weights, rank, 2)
        (out / f"rank{rank}.json").write_text(json.dumps(result.metrics))
        torch.save(result.outputs, out / f"outputs{rank}.pt")


def test_two_gloo_ranks_equal_one_process(tmp_path):
    data = build_maze_dataset(MazeBuildConfig(output_dir=tmp_path / "maze", grid_size=6, train_samples=2,
                                              test_samples=10, min_path_length=2, max_path_length=6))
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(build_model(ARCH).model.state_dict(), weights)
    result = _evaluate(data, weights, 0, 1)
    single = result.metrics
    mp.spawn(_worker, args=(free_port(), data, weights, tmp_path), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]  # every rank holds the reduced totals
    for depth, metrics in single.items():
        reduced = ranks[0][str(depth)]
        assert set(reduced) == set(metrics)
        for key, value in metrics.items():
            assert abs(reduced[key] - value) < 1e-9, key
    assert single[3]["num_puzzles"] == 10 and single[3]["count"] == 20
    # The last global batch holds 2 puzzles: rank 0 gets both, rank 1 only padding; counted like the reference.
    assert single[3]["ref/different_init/total_samples"] == 12
    for rank in range(2):  # saved outputs come back in dataset order on every rank
        gathered = torch.load(tmp_path / f"outputs{rank}.pt", weights_only=True)
        for depth, fields in result.outputs.items():
            for key, tensor in fields.items():
                assert torch.equal(gathered[depth][key], tensor), (depth, key)
