"""One module per action, each over a `Session` (the way borgmatic keeps its actions)."""
