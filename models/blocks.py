"""The weight-tied block stack and the input/output heads every reasoner shares."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.config import ArchConfig
from models.layers import (
    Attention,
    CastedEmbedding,
    CastedLinear,
    CosSin,
    RotaryEmbedding,
    RotaryEmbedding2D,
    SwiGLU,
    rms_norm,
    trunc_normal_init_,
)
from models.reasoner import Latents, Reasoner, Segment
from utils.validation import ConfigError

KERNELS = ("reference", "fast")
FAST_TOKEN_MULTIPLE = 16  # bf16 tensor-core alignment for the mlp_t GEMMs' token axis


class ReasoningBlock(nn.Module):
    """Post-norm block: token mixing (attention, or an MLP across positions) then a channel MLP."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.eps = cfg.rms_norm_eps
        self.mlp_t_enabled = cfg.mlp_t
        if cfg.mlp_t:
            self.mlp_t = SwiGLU(cfg.total_positions, cfg.expansion)
        else:
            halves = 2 if cfg.pos_encodings == "rope2d" else 1
            self.self_attn = Attention(cfg.hidden_size, cfg.num_heads, rope_halves=halves)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.expansion)
        self.token_multiple = 1  # pad mlp_t's token axis to a multiple of this (`use_kernels`)

    def use_kernels(self, kernels: str) -> str | None:
        """`reference` or `fast`; returns what the fast path changes in this block (None: nothing)."""
        self.token_multiple = FAST_TOKEN_MULTIPLE if kernels == "fast" and self.mlp_t_enabled else 1
        if self.token_multiple == 1:
            return None
        positions = self.mlp_t.down_proj.weight.shape[0]
        return f"mlp_t token axis {positions} -> {positions + -positions % self.token_multiple} (zero weights)"

    def forward(self, x: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        if self.mlp_t_enabled:
            x = x.transpose(1, 2)
            mixed = self.mlp_t(x) if self.token_multiple == 1 else self.mlp_t.padded(x, self.token_multiple)
            x = rms_norm(x + mixed, self.eps)
            x = x.transpose(1, 2)
        else:
            x = rms_norm(x + self.self_attn(x, cos_sin), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningStack(nn.Module):
    """`Blocks(h + u)`: input injection by addition, then the stack of blocks.

    With `gradient_checkpointing` set, blocks run under activation checkpointing whenever
    gradients are being recorded (the last recursion of a segment), trading compute for memory.
    """

    def __init__(self, cfg: ArchConfig, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ReasoningBlock(cfg) for _ in range(num_layers))
        self.gradient_checkpointing = False

    def forward(self, h: torch.Tensor, u: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        return self.blocks(h + u, cos_sin)

    def blocks(self, x: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        """The layers alone, without input injection (the feed-forward baseline's whole network)."""
        checkpointed = self.gradient_checkpointing and torch.is_grad_enabled()
        for layer in self.layers:
            x = checkpoint(layer, x, cos_sin, use_reentrant=False) if checkpointed else layer(x, cos_sin)
        return x


def sinusoidal_table(positions: int, dim: int) -> torch.Tensor:
    """Fixed table: column 2i = sin(pos * w_i), 2i+1 = cos(pos * w_i), w_i = 10000^(-2i/dim)."""
    pos = torch.arange(positions, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(positions, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class PuzzleEmbedding(nn.Module):
    """Per-puzzle vectors (HRM, TRM), trained by a sparse sign-SGD step rather than the main optimizer.

    `weights` [num_puzzle_identifiers, ndim] is a persistent float32 buffer, zero at init as in the
    reference (`init_std` gives tests a table that is not), so the dense optimizer never sees it. In
    training with grad enabled the rows used by the batch are gathered into a leaf tensor
    (`local_weights`, with their `local_ids`) whose gradient the sparse optimizer applies; evaluation
    indexes the table directly. `remap_identifiers` makes identifier i read row table[i] (the
    memorisation check), leaving the state dict as it is.
    """

    def __init__(self, num_embeddings: int, dim: int, cast_to: torch.dtype, init_std: float = 0.0) -> None:
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer("weights", trunc_normal_init_(torch.empty(num_embeddings, dim), init_std))
        self.register_buffer("id_table", None, persistent=False)
        self.local_weights: torch.Tensor | None = None
        self.local_ids: torch.Tensor | None = None

    def remap_identifiers(self, table: torch.Tensor | None) -> None:
        """From now on identifier i reads row `table[i]` (a 1-D integer tensor with one entry per row);
        None restores the identity."""
        if table is not None:
            rows = self.weights.shape[0]
            if table.shape != (rows,) or table.is_floating_point():
                raise ValueError(f"identifier table: expected {rows} integer row ids, got {table.dtype} "
                                 f"{tuple(table.shape)}")
            if not 0 <= int(table.min()) <= int(table.max()) < rows:
                raise ValueError(f"identifier table: row ids must lie in [0, {rows})")
            table = table.to(device=self.weights.device, dtype=torch.long)
        self.id_table = table

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long() if self.id_table is None else self.id_table[ids.long()]
        rows = self.weights[ids]
        if self.training and torch.is_grad_enabled():
            rows = rows.detach().requires_grad_(True)
            self.local_weights, self.local_ids = rows, ids
        return rows.to(self.cast_to)


class ReasonerIO(Reasoner):
    """Embeddings, position encodings and output heads around a recurrence: the base of every
    architecture's inner network (the contract it fulfils: models/reasoner.py).

    Attribute names are the reference's (`embed_tokens`, `lm_head`, `q_head`, `embed_pos`,
    `puzzle_emb`) so released state dicts load as they are. Subclasses implement
    `recur(latents, x, cos_sin)`, the latent computation of one segment, and `reset`; the heads read
    the first of `latent_names` (TRM's and HRM's `z_H`). Every latent is [batch, positions, hidden].
    """

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dtype = cfg.dtype
        self.embed_scale = math.sqrt(cfg.hidden_size)
        init_std = 1.0 / math.sqrt(cfg.hidden_size)
        self.embed_tokens = CastedEmbedding(cfg.vocab_size, cfg.hidden_size, init_std, dtype)
        self.lm_head = CastedLinear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.q_head = CastedLinear(cfg.hidden_size, 2, bias=True)
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)
        self.puzzle_len = cfg.puzzle_positions
        if cfg.puzzle_emb_ndim > 0:
            self.puzzle_emb = PuzzleEmbedding(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim, dtype)

        positions = cfg.total_positions
        self.rotary_emb: nn.Module | None = None
        if cfg.uses_attention and cfg.pos_encodings == "rope":
            self.rotary_emb = RotaryEmbedding(cfg.head_dim, positions, cfg.rope_theta)
        elif cfg.uses_attention and cfg.pos_encodings == "rope2d":
            self.rotary_emb = RotaryEmbedding2D(cfg.head_dim, cfg.board_height, cfg.board_width, cfg.rope_theta)
        elif cfg.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(positions, cfg.hidden_size, init_std, dtype)
        elif cfg.pos_encodings == "absolute":
            self.register_buffer("absolute_pos_embedding", sinusoidal_table(positions, cfg.hidden_size))

    def remap_puzzle_identifiers(self, table: torch.Tensor | None) -> None:
        """Look puzzle `i` up at `table[i]` from now on (the memorisation check, evaluation/ablation.py)."""
        if not self.puzzle_len:
            raise ConfigError("puzzle_id_ablation: this model has no puzzle embedding (puzzle_emb_ndim 0)")
        self.puzzle_emb.remap_identifiers(table)

    def cos_sin(self) -> CosSin | None:
        return self.rotary_emb() if self.rotary_emb is not None else None

    def input_embeddings(self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor | None) -> torch.Tensor:
        emb = self.embed_tokens(inputs.to(torch.int32))
        if self.puzzle_len:
            if puzzle_identifiers is None:
                raise ValueError("this model has a puzzle embedding: the batch needs `puzzle_identifiers`")
            puzzle = self.puzzle_emb(puzzle_identifiers)
            pad = self.puzzle_len * self.cfg.hidden_size - puzzle.shape[-1]
            if pad > 0:
                puzzle = nn.functional.pad(puzzle, (0, pad))
            emb = torch.cat((puzzle.view(-1, self.puzzle_len, self.cfg.hidden_size), emb), dim=-2)
        if self.cfg.pos_encodings == "learned":
            emb = 0.707106781 * (emb + self.embed_pos.embedding_weight.to(emb.dtype))
        elif self.cfg.pos_encodings == "absolute":
            emb = 0.707106781 * (emb + self.absolute_pos_embedding.to(emb.dtype))
        return self.embed_scale * emb

    def heads(self, z_H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token logits (grid positions only) and the float32 halt / continue Q-logits."""
        logits = self.lm_head(z_H)[:, self.puzzle_len :]
        q = self.q_head(z_H[:, 0]).to(torch.float32)
        return logits, q[..., 0], q[..., 1]

    def empty_latents(self, batch_size: int, device: torch.device | str) -> Latents:
        shape = (batch_size, self.cfg.total_positions, self.cfg.hidden_size)
        return {name: torch.zeros(shape, dtype=self.cfg.dtype, device=device) for name in self.latent_names}

    def recur(self, latents: Latents, x: torch.Tensor, cos_sin: CosSin | None) -> Latents:
        raise NotImplementedError

    def forward(self, latents: Latents, batch: dict[str, torch.Tensor]) -> Segment:
        """One segment: the latents after `recur` (detached) and the heads read from the first one."""
        x = self.input_embeddings(batch["inputs"], batch.get("puzzle_identifiers"))
        latents = self.recur(latents, x, self.cos_sin())
        logits, q_halt, q_continue = self.heads(latents[self.latent_names[0]])
        return Segment({name: value.detach() for name, value in latents.items()}, logits, q_halt, q_continue)
