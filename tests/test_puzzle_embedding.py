"""The puzzle embedding (SPEC_ARC 9): one table and prefix for every architecture, the identifier remap of
the memorisation check, TRM's resize on load, released ARC layouts, and a hand-checked sign-SGD step."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import yaml

from models.blocks import PuzzleEmbedding, ReasonerIO
from models.loading import load_model_state, model_for_dataset
from models.registry import build_model
from tests.conftest import latent_shape, tiny_arch
from training.optim import SignSGDSparse
from utils.checkpoint import CheckpointError, read_checkpoint

TABLE = "model.inner.puzzle_emb.weights"
IDS = 7  # puzzle identifiers; 0 is the blank
TRM = tiny_arch("trm@TRMModel", H_layers=0, puzzle_emb_ndim=32, puzzle_emb_len=16, num_puzzle_identifiers=IDS)
HRM = tiny_arch("hrm@HRMModel", puzzle_emb_ndim=32, num_puzzle_identifiers=IDS)  # puzzle_emb_len 0: ceil(32/32)
ARCHS = {
    "trm": TRM,
    "hrm": HRM,
    "eqr": tiny_arch(puzzle_emb_ndim=32, puzzle_emb_len=4, num_puzzle_identifiers=IDS),
    "transformer": tiny_arch("transformer@TransformerModel", puzzle_emb_ndim=32, num_puzzle_identifiers=IDS),
}


def batch_of(ids: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 7, (len(ids), 16), generator=gen, dtype=torch.int32)
    labels = torch.randint(0, 7, (len(ids), 16), generator=gen, dtype=torch.int32)
    return {"inputs": inputs, "labels": labels, "puzzle_identifiers": torch.tensor(ids, dtype=torch.int32)}


def with_random_table(arch: dict, seed: int = 1) -> torch.nn.Module:
    """A loss-head model whose puzzle table is random except the blank row 0 (training never moves it)."""
    head = build_model(arch)
    table = torch.randn(head.state_dict()[TABLE].shape, generator=torch.Generator().manual_seed(seed))
    table[0] = 0
    load_model_state(head.model, {**head.state_dict(), TABLE: table})
    return head


def logits_of(head: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    model = head.model.eval()
    return model(model.initial_carry(batch), batch)[1]["logits"]


@pytest.mark.parametrize("kind", list(ARCHS))
def test_one_embedding_and_prefix_for_every_architecture(kind):
    arch = ARCHS[kind]
    head = build_model(arch)
    inner = head.model.inner
    assert type(inner.puzzle_emb) is PuzzleEmbedding and isinstance(inner, ReasonerIO)
    for method in ("input_embeddings", "heads", "forward"):
        assert getattr(type(inner), method) is getattr(ReasonerIO, method), method  # no second implementation
    emb = inner.puzzle_emb
    assert emb.weights.dtype == torch.float32 and emb.weights.shape == (IDS, 32)
    assert not emb.weights.any()  # zero init
    assert TABLE in head.state_dict() and all(p is not emb.weights for p in head.parameters())
    plen = {"trm": 16, "hrm": 1, "eqr": 4, "transformer": 1}[kind]
    assert inner.puzzle_len == plen and latent_shape(head.model, 2) == (2, 16 + plen, 32)
    assert logits_of(head, batch_of([1, 2])).shape == (2, 16, 7)


def test_trm_prefix_carries_the_row_in_token_0_and_zeros_after():
    arch = {**TRM, "forward_dtype": "bfloat16"}
    head = with_random_table(arch)
    inner = head.model.inner.eval()
    batch = batch_of([4, 2])
    x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"])
    assert x.dtype == torch.bfloat16 and x.shape == (2, 32, 32)
    rows = head.state_dict()[TABLE][[4, 2]]
    assert torch.equal(x[:, 0], math.sqrt(32) * rows.to(torch.bfloat16))
    assert not x[:, 1:16].any()
    assert torch.equal(x[:, 16:], math.sqrt(32) * inner.embed_tokens(batch["inputs"]))


def test_training_gathers_the_rows_into_a_leaf_and_evaluation_does_not():
    emb = with_random_table(TRM).model.inner.puzzle_emb
    ids = torch.tensor([3, 3, 5], dtype=torch.int32)
    emb.eval()
    emb(ids)
    assert emb.local_weights is None
    emb.train()
    with torch.no_grad():
        emb(ids)
    assert emb.local_weights is None  # HRM's extra no-grad segment leaves the gathered rows alone
    out = emb(ids)
    leaf = emb.local_weights
    assert leaf.is_leaf and leaf.requires_grad and torch.equal(leaf, emb.weights[[3, 3, 5]])
    assert emb.local_ids.tolist() == [3, 3, 5] and out.requires_grad


@pytest.mark.parametrize("backend", [None, "aot_eager"])
def test_identifier_remap_reads_other_rows_and_leaves_the_state_dict(backend):
    head = with_random_table(TRM)
    inner = head.model.inner.eval()
    state = {k: v.clone() for k, v in head.state_dict().items()}
    segment = inner if backend is None else torch.compile(inner, backend=backend, dynamic=False)
    batch = batch_of([1, 2, 5])
    shape = latent_shape(head.model, 3)
    z = {"z_H": torch.zeros(shape), "z_L": torch.zeros(shape)}

    def logits(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return segment(z, {**batch, "puzzle_identifiers": torch.tensor(ids, dtype=torch.int32)}).logits

    identity, as_remapped = logits([1, 2, 5]), logits([6, 0, 5])
    assert not torch.equal(identity, as_remapped)
    inner.puzzle_emb.remap_identifiers(torch.tensor([0, 6, 0, 3, 4, 5, 1]))
    assert torch.equal(logits([1, 2, 5]), as_remapped)
    assert head.state_dict().keys() == state.keys()
    assert all(torch.equal(head.state_dict()[k], v) for k, v in state.items())
    inner.puzzle_emb.remap_identifiers(None)
    assert torch.equal(logits([1, 2, 5]), identity)


def test_identifier_remap_refuses_a_table_that_does_not_fit():
    emb = PuzzleEmbedding(IDS, 4, torch.float32)
    for bad, message in ((torch.arange(IDS - 1), "expected 7 integer row ids"),
                         (torch.zeros(IDS), "expected 7 integer row ids"),
                         (torch.full((IDS,), IDS), r"row ids must lie in \[0, 7\)")):
        with pytest.raises(ValueError, match=message):
            emb.remap_identifiers(bad)


@pytest.mark.parametrize(("upstream", "arch", "plen"), [
    ("recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", TRM, 16),
    ("hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1", HRM, 1),
])
def test_released_arc_layout_loads_with_its_puzzle_table(tmp_path, upstream, arch, plen):
    """SPEC 6.2: a bare `_orig_mod.model.inner.*` state dict plus all_config.yaml, table [identifiers, hidden]."""
    head = with_random_table(arch)
    torch.save({f"_orig_mod.{k}": v for k, v in head.state_dict().items()}, tmp_path / "checkpoint")
    release_arch = {k: v for k, v in arch.items() if k not in ("seq_len", "vocab_size", "num_puzzle_identifiers")}
    (tmp_path / "all_config.yaml").write_text(yaml.safe_dump({"arch": {**release_arch, "name": upstream},
                                                              "data_path": "data/arc-aug"}))
    fields = {"seq_len": 16, "vocab_size": 7, "num_puzzle_identifiers": IDS}
    loaded = model_for_dataset(read_checkpoint(tmp_path / "checkpoint"), fields).act_model
    assert type(loaded) is type(head.model)
    assert loaded.inner.puzzle_len == plen and loaded.inner.puzzle_emb.weights.shape == (IDS, 32)
    assert loaded.state_dict().keys() == head.model.state_dict().keys()
    for key, value in head.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.inner.puzzle_emb.weights[1:].abs().min() > 0
    batch = batch_of([1, 3, 6, 0])
    assert torch.equal(logits_of(head, batch), loaded.eval()(loaded.initial_carry(batch), batch)[1]["logits"])


def test_a_table_of_another_size_loads_as_its_mean_row(caplog):
    source = with_random_table({**TRM, "num_puzzle_identifiers": 5})
    target = build_model(TRM)
    with caplog.at_level(logging.WARNING, logger="models.loading"):
        report = load_model_state(target.model, source.state_dict(), source="other.pth")
    assert report.ok
    mean = source.state_dict()[TABLE].mean(dim=0)
    assert torch.equal(target.state_dict()[TABLE], mean.expand(IDS, 32))
    assert [r.getMessage() for r in caplog.records] == [
        "other.pth: inner.puzzle_emb.weights has 5 puzzle rows, the model 7; every row starts from the "
        "checkpoint's mean row"]
    for key, value in source.model.state_dict().items():
        if key != "inner.puzzle_emb.weights":
            assert torch.equal(target.model.state_dict()[key], value), key


def test_other_shape_mismatches_still_raise():
    target = build_model(TRM)
    wrong_bias = {**with_random_table({**TRM, "num_puzzle_identifiers": 5}).state_dict(),
                  "model.inner.q_head.bias": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"shape mismatch: inner\.q_head\.bias \(checkpoint \(3,\)"):
        load_model_state(target.model, wrong_bias)
    wrong_width = {**target.state_dict(), TABLE: torch.zeros(IDS + 2, 16)}
    with pytest.raises(CheckpointError, match=r"shape mismatch: inner\.puzzle_emb\.weights \(checkpoint \(9, 16\)"):
        load_model_state(target.model, wrong_width)


def test_sign_sgd_step_by_hand_after_a_training_forward():
    head = with_random_table(TRM)
    emb = head.model.inner.puzzle_emb
    batch = batch_of([3, 3, 5])
    head.train()
    _, loss, *_ = head(carry=head.initial_carry(batch), batch=batch)
    loss.backward()
    grad = emb.local_weights.grad
    assert grad.shape == (3, 32) and emb.local_ids.tolist() == [3, 3, 5]
    summed3 = grad[0] + grad[1]
    assert (summed3.sign() != grad[0].sign()).any()  # the two rows of id 3 must be summed before the sign
    before = emb.weights.clone()
    lr, wd = 0.1, 0.5
    optimizer = SignSGDSparse(emb, lr=lr, weight_decay=wd)
    optimizer.step()
    after = emb.weights
    assert torch.equal(after[3], before[3] * (1 - lr * wd) - lr * torch.sign(summed3))
    assert torch.equal(after[5], before[5] * (1 - lr * wd) - lr * torch.sign(grad[2]))
    untouched = [r for r in range(IDS) if r not in (3, 5)]
    assert torch.equal(after[untouched], before[untouched]) and not after[0].any()
    assert not torch.equal(after[3], before[3]) and not torch.equal(after[5], before[5])

    stepped = after.clone()
    optimizer.zero_grad()
    optimizer.step()  # no gradient: nothing happens
    assert torch.equal(emb.weights, stepped)


def test_sign_sgd_without_any_backward_does_nothing():
    head = with_random_table(TRM)
    emb = head.model.inner.puzzle_emb
    before = emb.weights.clone()
    logits_of(head, batch_of([3, 3, 5]))  # an evaluation forward gathers nothing
    SignSGDSparse(emb, lr=0.1, weight_decay=0.5).step()
    assert torch.equal(emb.weights, before)


def test_a_prefix_too_short_for_the_embedding_is_refused_by_name():
    from models.config import TRMConfig, parse_config
    from utils.validation import ConfigError

    fields = dict(seq_len=900, vocab_size=12, H_cycles=1, L_cycles=1, L_layers=1, hidden_size=16, expansion=2,
                  num_heads=2, halt_max_steps=2, halt_exploration_prob=0.1, puzzle_emb_ndim=64)
    with pytest.raises(ConfigError, match="arch.puzzle_emb_len: 2 positions of hidden_size 16 cannot hold "
                                          "puzzle_emb_ndim 64"):
        parse_config(TRMConfig, {**fields, "puzzle_emb_len": 2})
    assert parse_config(TRMConfig, {**fields, "puzzle_emb_len": 4}).puzzle_positions == 4
    assert parse_config(TRMConfig, fields).puzzle_positions == 4  # ceil(64 / 16)
