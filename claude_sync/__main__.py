"""The `claude-sync` command. `push --hook` takes a short way past the CLI's imports: Claude
Code kills SessionEnd hooks after about 1.5 s, and the hand-off must take a fraction of it.
`--version` does too: it needs nothing but the version, which the CLI prints the same way."""

from __future__ import annotations

import gc
import sys

# Allocations between two passes of the cyclic garbage collector (Python's default: 700). A
# run keeps what it makes to its end (the state's rows, the scan's files: hundreds of
# thousands of tuples) and makes next to no cycles, and the passes over them cost a tenth
# of a no-op push of 100,000 files.
COLLECT_AFTER = 50_000


def main() -> None:
    gc.set_threshold(COLLECT_AFTER)
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

    try:
        cli_main(prog_name="claude-sync")
    finally:
        gc.freeze()  # nor does the collector pass over them again as Python exits


if __name__ == "__main__":
    main()
