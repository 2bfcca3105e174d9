"""The training loop every algorithm shares, its checkpoints and run logs, and loading trained runs."""
