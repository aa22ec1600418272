"""A stopped evaluation pass continues from its saved state and ends bit for bit as an unbroken one."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from evaluation.engine import run_evaluation
from evaluation.pass_state import PassState
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime, Selection
from evaluation.stopping import StopRule
from tests.conftest import noisy_eqr_and_batches
from utils.safe_load import safe_torch_load

DEPTHS = [1, 3, 6]
PLAN = EvalPlan(DEPTHS, breadth=Breadth(restarts=2), selection=Selection(top_k=1, window=2), counting="both",
                outputs=Outputs(per_trajectory=True, save=("preds", "q_halt_logits")),
                runtime=Runtime(seed=5, progress=False))


class Stopped(Exception):
    """What the test's checkpoint hook raises, as a preempted job would stop."""


@pytest.fixture(scope="module")
def model_and_batches():
    return noisy_eqr_and_batches(4, 3, last_valid=2)  # the last batch pads one row


class Counting:
    """The model's own segment function, counting the trajectory-segments it runs."""

    def __init__(self, inner):
        self.inner, self.rows = inner, 0

    def __call__(self, latents, batch):
        self.rows += latents["z_H"].shape[0]
        return self.inner(latents, batch)


def with_runtime(plan: EvalPlan, **changes) -> EvalPlan:
    return dataclasses.replace(plan, runtime=dataclasses.replace(plan.runtime, **changes))


def stop_after(calls: int, saved: list[PassState]):
    """A hook that saves the state at its `calls`-th call and stops the pass."""
    seen = [0]

    def hook(state):
        seen[0] += 1
        if seen[0] == calls:
            buffer = io.BytesIO()  # through torch.save and the safe loader, as the state file goes
            torch.save(state().to_dict(), buffer)
            buffer.seek(0)
            saved.append(PassState.from_dict(torch.load(buffer, weights_only=True)))
            raise Stopped
    return hook


@pytest.mark.parametrize("elastic", [None, StopRule(rules=("stable",), patience=1, min_steps=2)])
@pytest.mark.parametrize("calls", [8, 14, 22])
def test_a_resumed_pass_equals_an_unbroken_one(model_and_batches, elastic, calls):
    model, batches = model_and_batches
    plan = with_runtime(dataclasses.replace(PLAN, stopping=elastic), max_rows=5)
    whole = run_evaluation(model, batches, plan)

    saved: list[PassState] = []
    with pytest.raises(Stopped):
        run_evaluation(model, batches, with_runtime(plan, checkpoint=stop_after(calls, saved)))
    state = saved[0]
    assert state.counted > 0 or state.finished, "the pass must have finished something before it stopped"
    counter = Counting(model.inner)
    resumed = run_evaluation(model, batches, with_runtime(plan, resume=state, segment=counter))

    # The reference's first residual is measured from the state the trajectory's slot held before
    # (counting=reference|both): the one number that depends on the slots, as tests/test_continuous_batching.py
    # shows; a resumed pass fills its slots anew.
    slot_dependent = "ref/residual_of_1_steps"
    for depth in DEPTHS:
        assert {k: v for k, v in resumed.metrics[depth].items() if k != slot_dependent} == \
            {k: v for k, v in whole.metrics[depth].items() if k != slot_dependent}
    for depth, columns in whole.per_trajectory.items():
        assert resumed.per_trajectory[depth]["stop"] == columns["stop"]
        for key, values in columns.items():
            if key != "stop":  # bit-equal, NaN (no convergence score at depth 1) included
                torch.testing.assert_close(torch.tensor(resumed.per_trajectory[depth][key]), torch.tensor(values),
                                           rtol=0, atol=0, equal_nan=True)
    for depth in DEPTHS:
        for key, value in whole.outputs[depth].items():
            assert torch.equal(resumed.outputs[depth][key], value), (depth, key)
    assert (resumed.trajectory_segments, resumed.trajectories) == (whole.trajectory_segments, whole.trajectories)
    # only what had not finished ran again: fewer slot-segments than the whole pass (the compiled-shape path
    # runs every slot each segment, so count segments x slots against the unbroken pass on the same path)
    full = Counting(model.inner)
    run_evaluation(model, batches, with_runtime(plan, segment=full))
    assert counter.rows < full.rows


def test_adaptive_breadth_is_not_resumable(model_and_batches):
    model, batches = model_and_batches
    plan = EvalPlan(DEPTHS, breadth=Breadth(agree=2, restarts=3), runtime=Runtime(progress=False))
    with pytest.raises(ValueError, match="breadth_agree: an adaptive-breadth pass cannot be saved"):
        run_evaluation(model, batches, with_runtime(plan, checkpoint=lambda state: state()))
    with pytest.raises(ValueError, match="breadth_agree: an adaptive-breadth pass cannot be saved"):
        run_evaluation(model, batches, with_runtime(plan, resume=PassState()))


def test_a_state_round_trips_through_the_safe_loader(model_and_batches, tmp_path):
    model, batches = model_and_batches
    saved: list[PassState] = []
    with pytest.raises(Stopped):
        run_evaluation(model, batches, with_runtime(PLAN, checkpoint=stop_after(12, saved)))
    path = tmp_path / "state.pt"
    torch.save(saved[0].to_dict(), path)
    again = PassState.from_dict(safe_torch_load(path))
    assert again.counted == saved[0].counted and set(again.finished) == set(saved[0].finished)


def test_finished_trajectories_are_stored_by_column_and_come_back_exactly():
    big = 2**40  # an integer no narrower type holds
    finished = {(0, row, 0): {"snapshots": {4: {"preds": torch.tensor([row, 3, 10]), "q_halt": torch.tensor(0.25 * row),
                                                "stop": "depth" if row else "stable"},
                                            8: {"preds": torch.tensor([big, -row, 1]), "stop": "depth"}},
                              "slot_segments": 4 + row, "residuals": [0.1 * i for i in range(row)],
                              "reference_residuals": []}
                for row in range(3)}
    state = PassState(counted=1, tallies={"segments": 7}, finished=finished, elapsed_s=2.5)
    saved = state.to_dict()
    columns = {tuple(c["path"]): c for c in saved["columns"]}
    assert saved["keys"].shape == (3, 3) and len(columns) == 8
    assert columns[("snapshots", 4, "preds")]["stacked"].dtype == torch.int8  # tokens: a byte each
    assert columns[("snapshots", 8, "preds")]["stacked"].dtype == torch.int64
    assert columns[("residuals",)]["lengths"].tolist() == [0, 1, 2]
    again = PassState.from_dict(saved)
    assert (again.counted, again.tallies, again.elapsed_s) == (1, {"segments": 7}, 2.5)
    assert list(again.finished) == list(finished)
    for key, result in finished.items():
        back = again.finished[key]
        assert back["residuals"] == result["residuals"] and back["slot_segments"] == result["slot_segments"]
        for depth, snapshot in result["snapshots"].items():
            for name, value in snapshot.items():
                got = back["snapshots"][depth][name]
                same = got == value if isinstance(value, str) else torch.equal(got, value) and got.dtype == value.dtype
                assert same, (key, depth, name)
