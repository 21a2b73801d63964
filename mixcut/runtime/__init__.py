"""How a run lives among processes and signals: torchrun/SLURM environment and
the DDP helpers (`distributed`), graceful stop and requeue (`signals`), and the
test-only fault injection points (`faults`)."""
