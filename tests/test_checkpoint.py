"""Checkpoint loading: released layout, key schemes, EMA, safety and error reports."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from models.ema import EMA
from models.registry import build_model
from tests.conftest import FIXTURES, tiny_arch
from utils.checkpoint import CheckpointError, canonical_key, load_checkpoint, safe_torch_load

RELEASE = FIXTURES / "release_format_sudoku.pth"


def test_release_checkpoint_loads_with_ema_by_default():
    loaded = load_checkpoint(RELEASE)
    assert loaded.used_ema and loaded.step == 50000
    assert type(loaded.model).__name__ == "InferenceLossHead"
    assert loaded.act_model.config.seq_len == 81 and loaded.act_model.config.vocab_size == 11
    raw = loaded.raw
    shadow = {canonical_key(k): v for k, v in raw["ema"]["shadow"].items()}
    torch.testing.assert_close(loaded.act_model.state_dict()["inner.lm_head.weight"], shadow["inner.lm_head.weight"])
    plain = load_checkpoint(RELEASE, use_ema=False)
    assert not plain.used_ema
    assert not torch.equal(plain.act_model.inner.lm_head.weight, loaded.act_model.inner.lm_head.weight)


@pytest.mark.parametrize("prefix", ["", "model.", "_orig_mod.model.", "model._orig_mod."])
def test_every_key_scheme_loads(tmp_path, prefix):
    head = build_model(tiny_arch())
    state = {prefix + k: v for k, v in head.model.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"model": state, "config": {"arch": tiny_arch()}, "step": 3}, path)
    loaded = load_checkpoint(path, use_ema=False)
    for k, v in head.model.state_dict().items():
        assert torch.equal(loaded.act_model.state_dict()[k], v)


def test_mismatches_are_reported_by_name(tmp_path):
    head = build_model(tiny_arch())
    state = dict(head.state_dict())
    del state["model.inner.lm_head.weight"]
    state["model.inner.extra.weight"] = torch.zeros(1)
    state["model.inner.q_head.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save({"model": state, "config": {"arch": tiny_arch()}}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "missing: inner.lm_head.weight" in msg
    assert "unexpected: inner.extra.weight" in msg
    assert "inner.q_head.bias (checkpoint (3,) vs model (2,))" in msg
    loaded = load_checkpoint(path, strict=False)  # non-strict loads what fits
    assert torch.equal(loaded.act_model.inner.embed_tokens.embedding_weight,
                       head.model.inner.embed_tokens.embedding_weight)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_malicious_pickle_global_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "config": {"arch": {}}, "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_torch_load(path)
    with pytest.raises(CheckpointError, match="evil.pth: refused"):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


def test_numpy_and_python_rng_state_is_admitted(tmp_path):
    import random

    path = tmp_path / "rng.pth"
    torch.save({"numpy": np.random.get_state(), "python": random.getstate(), "rng": torch.get_rng_state()}, path)
    state = safe_torch_load(path)
    assert state["numpy"][0] == "MT19937" and state["numpy"][1].dtype == np.uint32


def test_other_numpy_objects_are_refused(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"x": np.array(["a"], dtype=object)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_torch_load(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain-pickle case below
def test_missing_and_non_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth: not a PyTorch checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "tensor.pth"
    torch.save(torch.zeros(2), other)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(other)
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(CheckpointError, match="plain.pkl"):
        load_checkpoint(tmp_path / "plain.pkl")


def test_seq_len_needed_for_attention_models(tmp_path):
    arch = {k: v for k, v in tiny_arch().items() if k not in ("seq_len", "vocab_size")}
    head = build_model(tiny_arch())
    path = tmp_path / "attn.pth"
    torch.save({"model": head.state_dict(), "config": {"arch": arch}}, path)
    with pytest.raises(CheckpointError, match=r"arch\.seq_len.*dataset"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, data_fields={"seq_len": 16})
    assert loaded.act_model.config.vocab_size == 7  # recovered from the embedding table


def test_ema_update_formula_and_swap():
    head = build_model(tiny_arch())
    ema = EMA(head, mu=0.9)
    start = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in head.parameters():
            p.add_(1.0)
    ema.update(head)
    for name, p in head.named_parameters():
        torch.testing.assert_close(ema.shadow[name], 0.9 * start[name] + 0.1 * p.detach())
    live = head.model.inner.lm_head.weight.detach().clone()
    with ema.swapped_in(head):
        torch.testing.assert_close(head.model.inner.lm_head.weight, ema.shadow["model.inner.lm_head.weight"])
    assert torch.equal(head.model.inner.lm_head.weight, live)
    assert all(k.startswith("model.inner.") for k in ema.state_dict()["shadow"])
