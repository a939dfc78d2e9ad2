"""How the command line shows results: sizes, counts, the per-file printer, summary lines."""

from __future__ import annotations

import contextlib
import datetime
import math
import sys
import time
from typing import TYPE_CHECKING

import click

from .files import size_text

if TYPE_CHECKING:
    from .actions.prune import Pruned
    from .rclone import TransferStats
    from .session import Event, Summary


class Printer:
    """Shows action events: per-file lines, conflicts, warnings; nothing when quiet. On a
    terminal, also a line redrawn in place on stderr: a bar of files done, or while objects
    are sent or fetched, the bytes done, the rate and the time left (`progress`)."""

    ARROWS = {"upload": "↑", "download": "↓", "delete": "−"}

    BAR_MIN_FILES = 10
    BAR_WIDTH = 30

    def __init__(self, quiet: bool, verbose: bool, to_stderr: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.to_stderr = to_stderr
        self.started = time.monotonic()
        self.bar_shown = False
        self.terminal = sys.stderr.isatty()
        self.warned: set[str] = set()  # `sync` scans twice: each warning is shown once

    def _clear_bar(self) -> None:
        if self.bar_shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.bar_shown = False

    def _draw_bar(self, event: Event) -> None:
        if not self.terminal or self.quiet or event.total < self.BAR_MIN_FILES:
            return
        filled = self.BAR_WIDTH * event.index // event.total
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        sys.stderr.write(f"\r[{bar}] {event.index}/{event.total}")
        sys.stderr.flush()
        self.bar_shown = True

    def progress(self, stats: TransferStats | None) -> None:
        """Draw where a transfer is in place of the line drawn last, or, with None (the
        transfer is over), take it away: the next line starts where it started. Only on a
        terminal, and not with -q: it is for a person watching, and a log has no use for
        it. A terminal gone meanwhile is no failure of the transfer."""
        with contextlib.suppress(OSError):
            if stats is None:
                self._clear_bar()
            elif self.terminal and not self.quiet:
                sys.stderr.write("\r\033[K" + transfer_line(stats))
                sys.stderr.flush()
                self.bar_shown = True

    def __call__(self, event: Event) -> None:
        self._clear_bar()
        try:
            self._show(event)
        finally:
            self._draw_bar(event)

    def _show(self, event: Event) -> None:
        if event.kind == "warning":
            if event.detail not in self.warned:
                self.warned.add(event.detail)
                click.echo(f"! {event.detail}", err=True)
            return
        if event.kind == "conflict":
            if event.detail == "dry run":
                click.echo(f"⚠ Conflict: {event.path} (a pull would keep both sides)", err=True)
            else:
                click.echo(f"⚠ Conflict: {event.path} (saved as {event.detail})", err=True)
            return
        if self.quiet:
            return
        if event.kind == "note":
            click.echo(f"· {event.detail}", err=self.to_stderr)
            return
        arrow = self.ARROWS.get(event.kind, "·")
        counter = f"[{event.index}/{event.total}] " if event.total else ""
        what = "deleted" if event.kind == "delete" else size_text(event.size)
        extra = f", {event.detail}" if event.detail else ""
        timing = f" +{time.monotonic() - self.started:.2f}s" if self.verbose else ""
        click.echo(f"{arrow} {counter}{event.path} ({what}{extra}){timing}", err=self.to_stderr)

    def done(self, line: str) -> None:
        self._clear_bar()
        if not self.quiet:
            suffix = f" in {time.monotonic() - self.started:.2f}s" if self.verbose else ""
            click.echo(line + suffix, err=self.to_stderr)


def transfer_line(stats: TransferStats) -> str:
    """A transfer for a person: `  412.0 MB / 1.6 GB  48.0 MB/s  25 s left`; the rate and
    the time left only once rclone knows them."""
    parts = [f"{size_text(stats.bytes)} / {size_text(stats.total_bytes)}"]
    if stats.speed > 0:
        parts.append(f"{size_text(round(stats.speed))}/s")
    if stats.eta is not None:
        parts.append(f"{duration_text(stats.eta)} left")
    return "  " + "  ".join(parts)


def duration_text(seconds: float) -> str:
    """A time left, rounded up to the second, in the two largest units: `25 s`,
    `4 min 10 s`, `1 h 5 min`."""
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, seconds_left = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds_left} s"
    return f"{seconds_left} s"


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def counts(summary: Summary, *kinds: str) -> str:
    words = {
        "uploaded": summary.uploaded,
        "downloaded": summary.downloaded,
        "deleted": summary.deleted,
        "conflicts": summary.conflicts,
    }
    parts = []
    for kind in kinds:
        if kind == "conflicts":
            parts.append(count(words[kind], "conflict"))
        else:
            parts.append(f"{words[kind]} {kind}")
    return ", ".join(parts)


def pull_line(summary: Summary, dry_run: bool) -> str:
    if dry_run:
        return f"(dry run) a pull would change {count(len(summary.planned), 'file')}"
    if summary.refused:
        return (
            "! Pull incomplete: "
            + counts(summary, "downloaded", "deleted", "conflicts")
            + f", {len(summary.refused)} refused"
        )
    if summary.downloaded or summary.deleted or summary.conflicts:
        return "✓ Pull complete: " + counts(summary, "downloaded", "deleted", "conflicts")
    return "✓ Already up to date"


def push_line(summary: Summary, dry_run: bool) -> str:
    if dry_run:
        return f"(dry run) a push would send {count(summary.uploaded + summary.deleted, 'change')}"
    if summary.checked:  # push --all
        return (
            "✓ Push complete: "
            + counts(summary, "uploaded", "deleted")
            + f"; {count(summary.checked, 'object')} checked, {summary.resent} sent again"
        )
    if summary.uploaded or summary.deleted:
        return "✓ Push complete: " + counts(summary, "uploaded", "deleted")
    if summary.published:
        return f"✓ Push complete: published {summary.published} settled conflicts"
    if summary.moves:
        return f"✓ Push complete: published {count(summary.moves, 'project move')}"
    return "✓ Nothing to push"


def prune_line(result: Pruned, dry_run: bool) -> str:
    from .actions.prune import GRACE_SECONDS  # kept off the start-up path of other commands

    them = "it" if result.young == 1 else "them"
    young = (
        f"; {count(result.young, 'unused object')} kept, younger than "
        f"{GRACE_SECONDS // 60} minutes (a push may still be on its way to naming {them})"
        if result.young
        else ""
    )
    size = size_text(result.size)
    if dry_run:
        return f"(dry run) prune would delete {count(result.deleted, 'object')} ({size}){young}"
    if result.deleted:
        return f"✓ Pruned {count(result.deleted, 'object')} ({size}){young}"
    return f"✓ Nothing to prune{young}"


def table_lines(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    widths[-1] = 0
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


CONFLICTS_PENDING = 3  # the exit code of a run that leaves conflicts to settle


def refused_line(refused: list[str]) -> str:
    """The hint after a pull that refused files (each was named in a warning already)."""
    return (
        f"✗ {count(len(refused), 'file')} not pulled (an object missing or damaged on the "
        "remote): run `claude-sync verify --repair` on a device that has these files"
    )


def exit_if_unrestorable(summary: Summary) -> None:
    """A push --all that could not send every missing object (each was named in a
    warning) leaves files no other device can pull: exit 1, with the way out."""
    if summary.unrestorable:
        click.echo(
            f"✗ {count(len(summary.unrestorable), 'file')} still missing objects on the "
            "remote: run `claude-sync verify --repair` on a device that has these files",
            err=True,
        )
        sys.exit(1)


def exit_after_pull(summary: Summary) -> None:
    """Exit as a pull's outcome says, naming what is left even with -q: refused files are
    a failure (exit 1) and win over conflicts left to settle (exit 3), since conflicts
    have a copy of each side here while a refused file has not got its new bytes at all;
    both are named either way."""
    if summary.pending:
        click.echo(
            f"⚠ {count(len(summary.pending), 'conflict')} to settle: "
            + ", ".join(summary.pending[:3])
            + (", …" if len(summary.pending) > 3 else "")
            + "; run `claude-sync conflicts`",
            err=True,
        )
    if summary.refused:
        click.echo(refused_line(summary.refused), err=True)
        sys.exit(1)
    if summary.pending:
        sys.exit(CONFLICTS_PENDING)


def when_text(mtime_ns: int) -> str:
    """A time for a person: local, to the minute."""
    if not mtime_ns:
        return "-"
    when = datetime.datetime.fromtimestamp(mtime_ns / 1e9).astimezone()
    return when.strftime("%Y-%m-%d %H:%M")


def when_iso(mtime_ns: int) -> str | None:
    """A time for a program: ISO 8601 in UTC, to the second."""
    if not mtime_ns:
        return None
    when = datetime.datetime.fromtimestamp(mtime_ns // 10**9, datetime.timezone.utc)
    return when.isoformat()
