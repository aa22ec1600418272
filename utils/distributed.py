"""Process group and device setup for single-process and torchrun launches.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them this is one process on one
device. NCCL serves CUDA, gloo everything else (the CPU path).

A rank that dies (the OOM killer, a lost node) must not leave the others waiting forever: the group's
collectives time out after `DIST_TIMEOUT_MINUTES` (default 10; torchrun's agent ends the survivors
sooner when the dead rank was on its node), and `peer_failures` turns the error a survivor's
collective raises into one line naming the rank (`PeerLost`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from utils import threads
from utils.validation import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(requested: str, local_rank: int) -> torch.device:
    """`auto`: CUDA, else Apple MPS, else CPU; an explicit choice that is unavailable is an error."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device: cuda requested but no CUDA device is available (use device=cpu or device=auto)")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: mps requested but MPS is not available (use device=cpu or device=auto)")
    return torch.device(requested)


def setup(requested_device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun; pick this rank's device and CPU threads."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    threads.configure()
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = _attempt_store(world_size)
        timeout = collective_timeout()
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None,
                                store=store, rank=rank if store else -1, world_size=world_size if store else -1,
                                timeout=timeout)
        log.info("process group: %s, rank %d of %d, collectives time out after %s", backend, rank, world_size,
                 timeout)
    log.info("device: %s", device)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def collective_timeout() -> timedelta:
    """`DIST_TIMEOUT_MINUTES` (default 10): how long a collective waits for a rank that does not come."""
    text = os.environ.get("DIST_TIMEOUT_MINUTES", "10")
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ConfigError(f"DIST_TIMEOUT_MINUTES: expected a positive number of minutes, got {text!r}")
    return timedelta(minutes=minutes)


class PeerLost(RuntimeError):
    """A collective failed on this rank because another rank is gone or stuck."""


@contextmanager
def peer_failures() -> Iterator[None]:
    """Inside the block, a collective that fails under a multi-rank group (gloo: the peer's connection
    closed; NCCL: the timeout or an aborted communicator, `DistError`) raises `PeerLost` with one line
    naming this rank; every other error passes unchanged."""
    try:
        yield
    except RuntimeError as err:
        if not (dist.is_initialized() and dist.get_world_size() > 1) or isinstance(err, PeerLost):
            raise
        message = str(err)
        if not (isinstance(err, dist.DistError) or "/gloo/" in message):
            raise
        first = next((line for line in message.splitlines() if line.strip()), type(err).__name__)
        raise PeerLost(f"rank {dist.get_rank()} of {dist.get_world_size()}: a collective failed, another rank "
                       f"is gone or stuck ({first.strip()[:300]})") from err


def _attempt_store(world_size: int) -> dist.Store | None:
    """Under torchrun's agent store, a view of it keyed by the restart attempt. The agent keeps its store
    across the restarts of `--max-restarts`, so a restarted rank could read the address a dead rank of
    the previous attempt published and time out connecting to it ("Gloo connectFullMesh failed ...
    Connection refused"); with its own prefix each attempt sees only its own ranks. None: the default
    env:// rendezvous."""
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is None or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False)
    return dist.PrefixStore(f"eqr_repro/attempt_{restart}", client)


def teardown() -> None:
    """Destroy the process group (any exit, errors included: no barrier that could wait on a dead rank)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def finish() -> None:
    """After a run that completed on every rank: wait for all ranks, then tear the group down. A rank that
    destroyed its gloo group while another still talked to it could abort at exit ("terminate called
    without an active exception")."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
    teardown()


def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """Sum in place across ranks (no-op in a single process), flattening into one collective."""
    if not (dist.is_initialized() and dist.get_world_size() > 1) or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def gather_objects(obj: object) -> list[object]:
    """Every rank's object, in rank order (a one-element list in a single process)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def on_every_rank(flag: bool, info: DistInfo) -> bool:
    """Whether `flag` holds on every rank (each rank calls it at the same point): a choice all must make alike."""
    count = torch.tensor([float(flag)], device=info.device)
    all_reduce_sum_([count])
    return int(count.item()) == info.world_size
