"""Training: DAGR, DML pairing, the loop, evaluation, checkpoints (torch)."""
