"""The `claude-sync` command. `push --hook` takes a short way past the CLI's imports: Claude
Code kills SessionEnd hooks after about 1.5 s, and the hand-off must take a fraction of it."""

from __future__ import annotations

import sys


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["push"] and "--hook" in arguments[1:]:
        from .hooks import push_hook
        from .locations import sync_home

        push_hook(sync_home())
        sys.exit(0)
    from .cli import main as cli_main

    cli_main(prog_name="claude-sync")


if __name__ == "__main__":
    main()
