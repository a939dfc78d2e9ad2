"""claude-sync: keep ~/.claude in step across machines, end-to-end encrypted, over rclone."""

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)
