"""How a run lives on its machine and among processes: device, precision and seed
policy (`policy`), torchrun/SLURM environment and the DDP helpers (`distributed`),
graceful stop and requeue (`signals`), and the test-only fault injection points
(`faults`)."""
