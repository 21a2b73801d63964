"""Distributed environment: torchrun (and SLURM) variables, process group, rank-0 helpers.

A single process is world size 1 and never touches torch.distributed, so the
same code runs everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info(environ=None) -> DistInfo:
    """Rank and world size from torchrun's variables, else from SLURM's
    (one task per GPU), else a single process."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistInfo()


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand SLURM's compressed host lists: ``gpu[01-03,07],cpu5`` ->
    ``['gpu01', 'gpu02', 'gpu03', 'gpu07', 'cpu5']`` (zero padding kept)."""
    hosts, i, n = [], 0, len(nodelist)
    while i < n:
        j = i
        while j < n and nodelist[j] not in ",[":
            j += 1
        prefix = nodelist[i:j]
        if j < n and nodelist[j] == "[":
            k = nodelist.index("]", j)
            for part in nodelist[j + 1 : k].split(","):
                lo, _, hi = part.partition("-")
                if hi:
                    hosts += [f"{prefix}{v:0{len(lo)}d}" for v in range(int(lo), int(hi) + 1)]
                else:
                    hosts.append(prefix + lo)
            j = k + 1
        elif prefix:
            hosts.append(prefix)
        i = j + 1 if j < n and nodelist[j] == "," else j
    return hosts


def slurm_rendezvous(environ=None) -> dict[str, str]:
    """MASTER_ADDR/MASTER_PORT for a SLURM job without torchrun: the first host
    of the job and a port derived from the job id (same on every task)."""
    env = os.environ if environ is None else environ
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or "localhost"
    job = int(env.get("SLURM_JOB_ID", "0"))
    return {
        "MASTER_ADDR": env.get("MASTER_ADDR") or expand_nodelist(nodes)[0],
        "MASTER_PORT": env.get("MASTER_PORT") or str(20000 + job % 20000),
    }


def restart_count(environ=None) -> int:
    """How often the launcher restarted this job (torchrun elastic or SLURM requeue)."""
    env = os.environ if environ is None else environ
    return max(int(env.get("TORCHELASTIC_RESTART_COUNT", 0) or 0), int(env.get("SLURM_RESTART_COUNT", 0) or 0))


_collective_device = torch.device("cpu")  # where collective tensors live: this rank's GPU under NCCL


def collective_device() -> torch.device:
    """The device of every tensor this process hands to a collective (set by `init_process_group`)."""
    return _collective_device


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """Make ``device`` this process's current CUDA device, then join the process
    group (NCCL on CUDA, Gloo on CPU) when world size > 1.

    The current device must be set first: torch's object collectives
    (``broadcast_object_list``, ``all_gather_object``) and the DataLoader's pin
    thread use ``torch.cuda.current_device()``, which is ``cuda:0`` on every
    rank until ``set_device`` says otherwise (NCCL then refuses a tensor on
    another rank's GPU, and every rank opens a context on GPU 0)."""
    global _collective_device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not info.enabled or dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:  # srun without torchrun
        os.environ.update(slurm_rendezvous())
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    timeout = timedelta(minutes=30)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is not None and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # torchrun keeps one store for all restarts: without a fresh key prefix per
        # attempt, the restarted ranks read their dead predecessors' addresses.
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), info.world_size, is_master=False, timeout=timeout
        )
        kwargs["store"] = dist.PrefixStore(f"mixcut/attempt{restart}", store)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, timeout=timeout, **kwargs)
    _collective_device = device if backend == "nccl" else torch.device("cpu")


def is_initialized() -> bool:
    """True inside a process group (torchrun with more than one process)."""
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """``obj`` from rank ``src`` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_collective_device)
    return box[0]


def broadcast_buffers(*modules: torch.nn.Module, src: int = 0) -> None:
    """Every rank takes rank ``src``'s buffers (BatchNorm running statistics).

    DDP sends rank 0's buffers at the start of each training forward, but that forward then
    updates each rank's copy with its own batch (and an EMA copies them), so after the last
    step the ranks hold different statistics: without this they would validate different
    models, none of them exactly the one rank 0 saves."""
    if not is_initialized():
        return
    groups: dict[tuple, list[torch.Tensor]] = {}
    for module in modules:
        for buffer in module.buffers():
            groups.setdefault((buffer.dtype, buffer.device), []).append(buffer)
    # one collective per (dtype, device) instead of one per buffer: a ResNet-50 has 159 buffers
    for buffers in groups.values():
        flat = torch.cat([b.detach().reshape(-1) for b in buffers])
        dist.broadcast(flat, src=src)
        for b, part in zip(buffers, flat.split([b.numel() for b in buffers])):
            b.copy_(part.view_as(b))


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)  # on torch.cuda.current_device() under NCCL: `init_process_group` set it
    return out


def all_reduce_max(value: int) -> int:
    """Largest ``value`` over all ranks (e.g. 'any rank wants to stop')."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_collective_device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def cleanup() -> None:
    global _collective_device
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _collective_device = torch.device("cpu")
