"""The one stop rule: its defaults are the evaluation keys' defaults, and its test on hand-made rows."""

from __future__ import annotations

import pytest
import torch

from evaluation.config import parse_eval_config
from evaluation.stopping import StopRule


def test_the_elastic_keys_make_the_rule_with_its_defaults():
    assert parse_eval_config({"checkpoint": "x"}).stopping.rule is None
    assert parse_eval_config({"checkpoint": "x", "elastic": True}).stopping.rule == StopRule()
    assert parse_eval_config({"checkpoint": "x", "elastic": True, "elastic_use_q": True}).stopping.rule == \
        StopRule(rules=("q",))
    given = parse_eval_config({"checkpoint": "x", "elastic": True, "elastic_rules": ["q", "stable"],
                               "elastic_combine": "any", "elastic_patience": 3, "elastic_min_steps": 1})
    assert given.stopping.rule == StopRule.parse("q|stable:3", min_steps=1)


def test_conditions_and_firing_on_hand_rows():
    stable = torch.tensor([0, 2, 3, 3])  # segments with an unchanged prediction
    residual = torch.tensor([0.5, 0.001, 0.5, 0.001])
    q_halt = torch.tensor([1.0, -1.0, 0.0, 2.0])
    steps = torch.tensor([1, 4, 4, 4])
    both = StopRule(rules=("stable", "residual"), patience=3, tol=0.01, min_steps=2)
    held = both.conditions(stable, residual, q_halt)
    assert held.tolist() == [[False, False, True, True], [False, True, False, True]]
    assert both.fires(held, steps).tolist() == [False, False, False, True]
    either = StopRule.parse("stable:3|q", min_steps=2)
    held = either.conditions(stable, residual, q_halt)
    assert held.tolist() == [[False, False, True, True], [True, False, False, True]]
    assert either.fires(held, steps).tolist() == [False, False, True, True]  # row 0: q holds, but step 1 < 2
    assert either.reason([True, True]) == "stable+q" and either.reason([False, True]) == "q"


@pytest.mark.parametrize("bad", [{"rules": ()}, {"rules": ("stable", "stable")}, {"rules": ("halt",)},
                                 {"combine": "most"}, {"patience": 0}, {"min_steps": 0}, {"tol": -1.0}])
def test_a_bad_rule_is_refused(bad):
    with pytest.raises(ValueError):
        StopRule(**bad)
