"""Validated architecture configs.

Keys and defaults follow the reference release so its configs and checkpoints load
unchanged; unknown keys (`name`, `loss`, `causal`, ...) are ignored. Invalid values are
refused with a `ConfigError` that names the offending key.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from utils.validation import ConfigError, format_validation_error

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def puzzle_positions(puzzle_emb_ndim: int, hidden_size: int, puzzle_emb_len: int = 0) -> int:
    """Tokens a puzzle embedding of `puzzle_emb_ndim` occupies before the grid: `puzzle_emb_len`
    when given, else ceil(ndim / hidden); 0 without one."""
    if puzzle_emb_ndim == 0:
        return 0
    return puzzle_emb_len or -(puzzle_emb_ndim // -hidden_size)


class LossConfig(BaseModel):
    """`arch.loss`: the loss head (`module@Class`, resolved by the registry) and its token loss."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "losses@ACTLossHead"
    loss_type: Literal["stablemax_cross_entropy", "softmax_cross_entropy"] = "stablemax_cross_entropy"


class ArchConfig(BaseModel):
    """Keys shared by every recurrent reasoner. `name` (`module@Class`), `short_name` and `loss`
    are the reference's bookkeeping keys; the rest shape the network."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str | None = None
    short_name: str | None = None
    loss: LossConfig = Field(default_factory=LossConfig)
    batch_size: int | None = Field(default=None, gt=0)
    seq_len: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    H_cycles: int = Field(gt=0)
    L_cycles: int = Field(gt=0)
    H_layers: int = Field(default=0, ge=0)
    L_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    expansion: float = Field(gt=0)
    num_heads: int = Field(gt=0)
    pos_encodings: Literal["rope", "rope2d", "none", "learned", "absolute"] = "rope"
    rms_norm_eps: float = Field(default=1e-5, gt=0)
    rope_theta: float = Field(default=10000.0, gt=0)
    board_height: int | None = Field(default=None, gt=0)
    board_width: int | None = Field(default=None, gt=0)
    halt_max_steps: int = Field(gt=0)
    halt_exploration_prob: float = Field(ge=0, le=1)
    forward_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    mlp_t: bool = False
    puzzle_emb_ndim: int = Field(default=0, ge=0)
    puzzle_emb_len: int = Field(default=0, ge=0)
    num_puzzle_identifiers: int = Field(default=1, gt=0)

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.forward_dtype]

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def puzzle_positions(self) -> int:
        """Tokens the puzzle embedding occupies before the grid (0 without one)."""
        return puzzle_positions(self.puzzle_emb_ndim, self.hidden_size, self.puzzle_emb_len)

    @property
    def total_positions(self) -> int:
        return self.seq_len + self.puzzle_positions

    @property
    def uses_attention(self) -> bool:
        return not self.mlp_t

    @model_validator(mode="after")
    def _check_shapes(self) -> ArchConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"num_heads: hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.uses_attention and self.pos_encodings in ("rope", "rope2d"):
            quantum = 4 if self.pos_encodings == "rope2d" else 2
            if self.head_dim % quantum:
                raise ValueError(
                    f"num_heads: head_dim {self.head_dim} must be divisible by {quantum} for {self.pos_encodings}"
                )
        if self.puzzle_emb_ndim > self.puzzle_positions * self.hidden_size:
            raise ValueError(f"puzzle_emb_len: {self.puzzle_emb_len} positions of hidden_size {self.hidden_size} "
                             f"cannot hold puzzle_emb_ndim {self.puzzle_emb_ndim} (0: ceil(ndim / hidden) positions)")
        if self.pos_encodings == "rope2d" and self.uses_attention:
            if self.board_height is None or self.board_width is None:
                raise ValueError("board_height: rope2d needs board_height and board_width")
            if self.board_height * self.board_width != self.seq_len:
                raise ValueError(
                    f"board_height: rope2d needs seq_len == board_height * board_width, got {self.seq_len} != "
                    f"{self.board_height} * {self.board_width}"
                )
            if self.puzzle_positions:
                raise ValueError("puzzle_emb_ndim: rope2d places every token on the board; no puzzle embedding")
        return self


class EqRConfig(ArchConfig):
    """TRM recurrence plus random initialisation (RI) and damped noisy updates (NI)."""

    pos_encodings: Literal["rope", "rope2d", "none"] = "rope"
    lambda_: float = Field(default=0.95, gt=0, le=1)
    noise_scale: float = Field(default=0.01, ge=0)
    H_init_std: float = Field(default=1.0, ge=0)
    L_init_std: float = Field(default=1.0, ge=0)


class TRMConfig(ArchConfig):
    no_ACT_continue: bool = True


class HRMConfig(ArchConfig):
    H_layers: int = Field(gt=0)
    no_ACT_continue: bool = False


class TransformerConfig(ArchConfig):
    """Feed-forward baseline: one pass through L_layers distinct blocks per segment."""

    H_cycles: int = Field(default=1, gt=0)
    L_cycles: int = Field(default=1, gt=0)
    halt_max_steps: int = Field(default=1, gt=0)
    halt_exploration_prob: float = Field(default=0.0, ge=0, le=1)
    no_ACT_continue: bool = True


def parse_config(cls: type[ArchConfig], data: dict[str, Any], prefix: str = "arch") -> ArchConfig:
    """Validate `data` into `cls`, raising ConfigError('arch.<key>: ...') on any problem."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None
