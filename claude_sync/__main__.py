"""The `claude-sync` command. `push --hook` takes a short way past the CLI's imports: Claude
Code kills SessionEnd hooks after about 1.5 s, and the hand-off must take a fraction of it.
`--version` does too: it needs nothing but the version, which the CLI prints the same way."""

from __future__ import annotations

import sys


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["push"] and "--hook" in arguments[1:]:
        from .hooks import push_hook
        from .locations import sync_home

        push_hook(sync_home())
        sys.exit(0)
    if arguments == ["--version"]:
        from . import __version__

        print(f"claude-sync, version {__version__}")
        sys.exit(0)
    from .cli import main as cli_main

    cli_main(prog_name="claude-sync")


if __name__ == "__main__":
    main()
