"""Where things live: kept free of heavy imports, for the hook hand-off's short start."""

from __future__ import annotations

import os
from pathlib import Path


def sync_home() -> Path:
    """claude-sync's own folder: $CLAUDE_SYNC_HOME, default ~/.claude-sync."""
    return Path(os.environ.get("CLAUDE_SYNC_HOME") or Path.home() / ".claude-sync")


def claude_dir() -> Path:
    """Claude Code's folder: $CLAUDE_CONFIG_DIR, default ~/.claude."""
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
