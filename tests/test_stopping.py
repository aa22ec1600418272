"""The one stop rule: its defaults are the evaluation keys' defaults, and its test on hand-made rows."""

from __future__ import annotations

import pytest
import torch

from evaluation.config import parse_eval_config
from evaluation.stopping import CONDITIONS, Condition, StopRule, register_condition
from utils.validation import ConfigError


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
    signals = {"stable": stable, "residual": residual, "q_halt": q_halt, "steps": steps}
    both = StopRule(rules=("stable", "residual"), patience=3, tol=0.01, min_steps=2)
    held = both.conditions(signals)
    assert held.tolist() == [[False, False, True, True], [False, True, False, True]]
    assert both.fires(held, steps).tolist() == [False, False, False, True]
    either = StopRule.parse("stable:3|q", min_steps=2)
    held = either.conditions(signals)
    assert held.tolist() == [[False, False, True, True], [True, False, False, True]]
    assert either.fires(held, steps).tolist() == [False, False, True, True]  # row 0: q holds, but step 1 < 2
    assert either.reason([True, True]) == "stable+q" and either.reason([False, True]) == "q"


@pytest.mark.parametrize("bad", [{"rules": ()}, {"rules": ("stable", "stable")}, {"rules": ("halt",)},
                                 {"combine": "most"}, {"patience": 0}, {"min_steps": 0}, {"tol": -1.0}])
def test_a_bad_rule_is_refused(bad):
    with pytest.raises(ValueError):
        StopRule(**bad)


def test_a_registered_condition_is_usable_by_name_in_every_form():
    """A plug-in's condition: its number parsed from the text, tested on the signals, named in `stop`."""
    register_condition(Condition("confident", lambda s, p: s["logits"].softmax(-1).amax(-1).amin(-1) >= p, float,
                                 0.9, "every token's top probability at least p"))
    try:
        rule = StopRule.parse("confident:0.6&stable:1", min_steps=1)
        assert rule.rules == ("confident", "stable") and rule.value("confident") == 0.6 and rule.patience == 1
        assert StopRule.parse("confident").value("confident") == 0.9  # its default
        logits = torch.tensor([[[4.0, 0.0], [0.0, 4.0]], [[0.1, 0.0], [4.0, 0.0]]])  # [rows, tokens, vocab]
        held = rule.conditions({"logits": logits, "stable": torch.tensor([1, 1])})
        assert held.tolist() == [[True, False], [True, True]]
        assert rule.reason([True, True]) == "confident+stable"
        assert parse_eval_config({"checkpoint": "x", "elastic": "confident:0.6|q"}).stopping.rule == \
            StopRule(rules=("confident", "q"), combine="any", min_steps=2, values=(("confident", 0.6),))
        assert parse_eval_config({"checkpoint": "x", "elastic": True, "elastic_rules": ["confident"]}).stopping.rule \
            == StopRule(rules=("confident",))
        with pytest.raises(ValueError, match="confident: needs a number >= 0"):
            StopRule(rules=("confident",), values=(("confident", -1.0),))
    finally:
        CONDITIONS.pop("confident")
    with pytest.raises(ConfigError, match="elastic: 'confident:0.6' is not one of stable:P, residual:T, q"):
        parse_eval_config({"checkpoint": "x", "elastic": "confident:0.6"})
