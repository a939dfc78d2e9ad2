"""claude-sync: keep ~/.claude in step across machines, end-to-end encrypted, over rclone."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("claude-sync")
except PackageNotFoundError:
    __version__ = "0+unknown"
