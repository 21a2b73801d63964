"""One rank of tests/integration/test_nonfinite_ddp.py (run by torchrun, Gloo): the engine's step with a
GradScaler on a DDP model, where MIXCUT_FAULTS makes one rank's loss NaN. Writes what the test compares
to OUT/rank<R>.pt.

    python -m torch.distributed.run --standalone --nproc_per_node=2 nonfinite_ddp_worker.py OUT skip|abort|stop

``stop``: no fault; rank 1 alone asks to stop from its third update on (a signal only it received).
"""

from __future__ import annotations

import contextlib
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from mixcut.engine import NonFiniteLossError, StepParts, TrainState, train_one_epoch


class Batches:
    def __init__(self, n: int, rank: int):
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
        self.data = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]

    def __len__(self):
        return len(self.data)

    def epoch(self, epoch, start):
        return iter(self.data[start:])


class NoMix:
    def __call__(self, x, y):
        return x, y

    def model_context(self, model):
        return contextlib.nullcontext()


def main(out: Path, policy: str) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    parts = StepParts(
        model=nn.parallel.DistributedDataParallel(model),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        loss_fn=nn.CrossEntropyLoss(),
        mixer=NoMix(),
        device=torch.device("cpu"),
        scaler=torch.amp.GradScaler("cpu", init_scale=256.0),  # the fp16 path: only the loss is checked
        on_nonfinite="skip" if policy == "stop" else policy,
    )
    state, outcome, stops = TrainState(), "finished", []

    def after_step(state: TrainState, stop: bool) -> bool:
        stops.append(stop)
        return stop

    def stop_requested() -> bool:
        return policy == "stop" and rank == 1 and state.global_step >= 2

    try:
        stats = train_one_epoch(parts, state, Batches(6, rank), after_step=after_step, stop_requested=stop_requested)
        outcome = "stopped" if stats["stopped"] else outcome
    except NonFiniteLossError as e:
        outcome = f"aborted: {e}"
        dist.barrier()  # what the trainer's debug save does next: a collective every rank must enter
    result = {"outcome": outcome, "state": state.as_dict(), "scale": parts.scaler.get_scale(), "stops": stops}
    result["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(result, out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
