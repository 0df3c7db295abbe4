"""Where work runs: a pure policy over fleet snapshots, and dispatch with retries."""
