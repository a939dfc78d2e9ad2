"""claude-sync: keep ~/.claude in step across machines, end-to-end encrypted, over rclone."""
