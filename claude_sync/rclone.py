"""The only module that starts rclone. It builds command lines and maps failures to one line.

Secrets never go on argv: the remote's settings live in an rclone config file passed with
`--config`, and `rclone obscure` reads its input from stdin.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RcloneError

if TYPE_CHECKING:
    from subprocess import Popen

NOT_FOUND_EXIT_CODES = (3, 4)
UNKNOWN_TIME = "2999-01-01T00:00:00Z"  # what list_files says for a time the remote lacks


class RemoteNotFound(RcloneError):
    """The file or folder asked for does not exist on the remote."""


def find_rclone(configured: str | None = None) -> str:
    """CLAUDE_SYNC_RCLONE, then the config, then the binary shipped with the package, then PATH."""
    candidates = [os.environ.get("CLAUDE_SYNC_RCLONE"), configured]
    shipped = Path(sysconfig.get_path("scripts")) / "rclone"
    candidates += [
        str(shipped),
        str(Path(sys.executable).parent / "rclone"),
        shutil.which("rclone"),
    ]
    for candidate in candidates[:2]:
        if candidate:
            if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
                raise RcloneError(
                    f"rclone not found at {candidate} (from CLAUDE_SYNC_RCLONE or config)"
                )
            return candidate
    for candidate in candidates[2:]:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RcloneError(
        "rclone not found: reinstall claude-sync (it ships rclone), "
        "or point CLAUDE_SYNC_RCLONE at an rclone binary"
    )


# Patterns for failures only, compiled (and cached by re) on first use, not on every run.
_TIMESTAMP = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (ERROR|CRITICAL|NOTICE) ?: ?"


def _failure_line(stderr: str) -> str:
    """The most telling line of rclone's JSON log: the last error, else the last notice."""
    messages: list[tuple[str, str]] = []
    for raw in stderr.splitlines():
        try:
            entry = json.loads(raw)
            messages.append((entry.get("level", ""), str(entry.get("msg", ""))))
        except (json.JSONDecodeError, AttributeError):
            if raw.strip():
                messages.append(("error", re.sub(_TIMESTAMP, "", raw.strip())))
    for levels in (("critical", "error"), ("notice",)):
        for level, message in reversed(messages):
            if level in levels and "Config file" not in message:
                return message
    return "rclone failed without a message"


# An S3 API error as rclone words it (aws-sdk-go-v2): "... StatusCode: 403, RequestID: ,
# HostID: , api error SignatureDoesNotMatch: The request signature ...".
_S3_ERROR = (
    r"StatusCode: \d+, RequestID: [^,]*, HostID: [^,]*, (?:api error )?"
    r"(?P<code>[A-Za-z]+)(?::\s*(?P<text>.*))?"
)
# code -> (what happened, why, or "" when the code says it all)
_S3_MEANINGS = {
    "SignatureDoesNotMatch": (
        "the remote rejected the credentials",
        "the secret access key is wrong",
    ),
    "InvalidAccessKeyId": ("the remote rejected the credentials", "no such access key ID"),
    "AccessDenied": (
        "the remote refused access",
        "these credentials may not use this bucket or path",
    ),
    # A HEAD request has no body to name the error: only its status, 403, is known.
    "Forbidden": ("the remote refused access", "wrong credentials, or no permission here"),
    "NoSuchBucket": ("the bucket does not exist", "check the bucket name"),
    "BucketAlreadyExists": ("the bucket name is taken by another account", ""),
    "RequestTimeTooSkewed": ("the remote refused the request", "this machine's clock is off"),
    "AuthorizationHeaderMalformed": ("the remote refused the request", "check the region"),
    "PermanentRedirect": ("the bucket is in another region", "set its region"),
}


def _explain_s3(message: str) -> str | None:
    """One clean line for an S3 API error: what it means and its code, without the empty
    request and host IDs; None for any other message."""
    found = re.search(_S3_ERROR, message, re.DOTALL)
    if found is None:
        return None
    code, text = found["code"], " ".join((found["text"] or "").split())
    meaning, why = _S3_MEANINGS.get(code, ("the remote refused the request", text))
    return f"{meaning} ({code}: {why})" if why else f"{meaning} ({code})"


def _explain(message: str) -> str:
    s3 = _explain_s3(message)
    if s3 is not None:
        return s3
    lowered = message.lower()
    hints = (
        ("connection refused", "the remote refused the connection (is the server running?)"),
        ("no such host", "the remote's host name does not resolve"),
        ("i/o timeout", "the remote did not answer in time"),
        ("timeout", "the remote did not answer in time"),
        ("unable to authenticate", "the remote rejected the credentials"),
        # S3 errors in another rclone's wording (CLAUDE_SYNC_RCLONE) than _S3_ERROR knows
        ("accessdenied", "the remote rejected the credentials"),
        ("signaturedoesnotmatch", "the remote rejected the credentials"),
        ("401 unauthorized", "the remote rejected the credentials"),
        ("didn't find section in config file", "the remote is not defined in the rclone config"),
        ("is a file not a directory", "could not open the remote (unreachable?)"),
        ("no space left on device", "the disk is full"),
    )
    for needle, explanation in hints:
        if needle in lowered:
            return f"{explanation}: {': '.join(message.split(': ')[-3:])}"
    return message


# With these, rclone's JSON log gets a line with a "stats" object every second of a
# transfer, and one more as it ends (even when it took less than a second).
STATS_FLAGS = ["--stats", "1s", "--stats-log-level", "NOTICE"]


@dataclass(frozen=True)
class TransferStats:
    """Where a transfer is, in rclone's own figures (from one of its stats lines)."""

    bytes: int  # sent or fetched so far
    total_bytes: int  # to send or fetch in all
    speed: float  # bytes a second, on average so far (0 until rclone has measured it)
    eta: float | None  # seconds left; None while rclone cannot tell


# Told each stats line of a transfer as rclone writes it, then None once the transfer is
# over (done, failed or stopped), so that a line drawn for it can be taken away.
Progress = Callable[[TransferStats | None], None]


class BatchedProgress:
    """A push's upload or a pull's download for `progress` as one transfer, although rclone
    makes it in batches: counted in bytes of the files (known from the start, unlike their
    objects' sizes), a batch by the share of its objects rclone has sent."""

    SHOW_EVERY = 0.1  # seconds: a pull read in place tells of each of 100,000 small files

    def __init__(self, progress: Progress, total: int) -> None:
        self._progress, self._total = progress, total
        self._done = 0
        self._started = time.monotonic()
        self._shown_at = -math.inf

    def batch(self, size: int) -> Progress:
        """What rclone tells of a batch of `size` bytes of files goes here."""

        def told(stats: TransferStats | None) -> None:
            if stats is not None:  # the line stays between batches, until `end`
                share = stats.bytes / stats.total_bytes if stats.total_bytes else 0.0
                self._show(self._done + round(share * size))

        return told

    def sent(self, size: int) -> None:
        self._done += size
        self._show(self._done)

    def end(self) -> None:
        self._progress(None)

    def _show(self, done: int) -> None:
        now = time.monotonic()
        if done < self._total and now - self._shown_at < self.SHOW_EVERY:
            return
        self._shown_at = now
        elapsed = now - self._started
        speed = done / elapsed if elapsed > 0 else 0.0
        eta = (self._total - done) / speed if speed > 0 else None
        self._progress(TransferStats(done, self._total, speed, eta))


def parse_stats(line: bytes) -> TransferStats | None:
    """The stats in one line of rclone's JSON log, or None for any other line."""
    try:
        entry = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return None
    stats = entry.get("stats") if isinstance(entry, dict) else None
    if not isinstance(stats, dict):
        return None
    eta = stats.get("eta")
    return TransferStats(
        bytes=int(stats.get("bytes") or 0),
        total_bytes=int(stats.get("totalBytes") or 0),
        speed=float(stats.get("speed") or 0),
        eta=float(eta) if isinstance(eta, (int, float)) else None,
    )


class _LogReader:
    """rclone's stderr, read line by line while rclone runs (communicate() gives it only
    once rclone has exited): each stats line goes to `progress`, every other line is kept
    for the failure message. It reads in a thread of its own, so that the caller's wait
    for rclone (its timeout, Ctrl-C) is the same as without progress."""

    def __init__(self, progress: Progress) -> None:
        self._progress: Progress | None = progress
        self._read_end, self.write_end = os.pipe()
        self._kept: list[bytes] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self.error: Exception | None = None  # what `progress` raised, if it did

    def start(self) -> None:
        """Start reading, once rclone holds the pipe's write end (or failed to start): our
        copy is closed, so the log ends when rclone's process group has exited."""
        os.close(self.write_end)
        self._thread.start()

    def finish(self) -> bytes:
        """Wait for the log's end, tell `progress` the transfer is over, and return every
        line but the stats."""
        self._thread.join()
        self._tell(None)
        return b"".join(self._kept)

    def _read(self) -> None:
        with open(self._read_end, "rb") as log:
            for line in log:
                stats = parse_stats(line)
                if stats is None:
                    self._kept.append(line)
                else:
                    self._tell(stats)

    def _tell(self, stats: TransferStats | None) -> None:
        """Call `progress`; one that fails is called no more, and its error is kept for
        the caller, while the log is still read to its end: rclone stops when nobody reads
        what it writes."""
        if self._progress is None:
            return
        try:
            self._progress(stats)
        except Exception as error:
            self._progress, self.error = None, error


STOP_GRACE_SECONDS = 1.0


def _stop(process: Popen[bytes]) -> None:
    """Stop rclone and every process it started: TERM, then KILL after a grace period."""
    import subprocess  # run imported it

    for stop_signal in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop_signal)
        try:
            process.communicate(timeout=STOP_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


class RcloneCall:
    """A started rclone command (see `Rclone.start`)."""

    def __init__(
        self,
        verb: str,
        process: Popen[bytes],
        stdin: bytes | None,
        log: _LogReader | None,
        limit: float | None,
        why: str,
    ) -> None:
        self._verb = verb
        self._process = process
        self._stdin = stdin
        self._log = log
        self._limit = limit  # seconds from the start it may take, and which limit that is
        self._why = why
        self._deadline = None if limit is None else time.monotonic() + limit

    def finish(self) -> bytes:
        """Wait for rclone; return its stdout, or raise RcloneError with one line."""
        import subprocess  # start imported it

        process, verb, log = self._process, self._verb, self._log
        left = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        if process.poll() is not None:
            # Done already (a call started early, waited for after other work): no limit, as
            # communicate(timeout=0) would give up even on a process that has exited.
            left = None
        try:
            stdout, stderr = process.communicate(self._stdin, timeout=left)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise RcloneError(
                f"rclone {verb} gave up after {self._limit:.0f} s ({self._why}): "
                "the remote did not answer"
            ) from None
        except BaseException:
            _stop(process)
            raise
        finally:
            if log is not None:
                stderr = log.finish()
        if process.returncode != 0:
            line = _failure_line(stderr.decode("utf-8", "replace"))
            if process.returncode in NOT_FOUND_EXIT_CODES:
                raise RemoteNotFound(f"not found on the remote: {line}")
            if process.returncode < 0:
                raise RcloneError(f"rclone {verb} was killed (signal {-process.returncode})")
            raise RcloneError(f"rclone {verb} failed: {_explain(line)}")
        if log is not None and log.error is not None:
            raise log.error
        return stdout

    def stop(self) -> None:
        """Stop rclone, its result unwanted."""
        _stop(self._process)
        if self._log is not None:
            self._log.finish()


@dataclass
class Rclone:
    """An rclone binary with the config file and timeouts every call uses."""

    binary: str
    config_file: str | None
    timeout: int = 30
    give_up_at: float | None = None
    transfers: int = 8

    def _command(self, args: list[str]) -> list[str]:
        command = [self.binary, *args, "--use-json-log", "--log-level", "NOTICE"]
        command += ["--contimeout", f"{min(self.timeout, 15)}s", "--timeout", f"{self.timeout}s"]
        command += ["--retries", "2", "--low-level-retries", "3"]
        if self.config_file:
            command += ["--config", self.config_file]
        return command

    def run(
        self,
        args: list[str],
        *,
        stdin: bytes | None = None,
        bounded: bool = False,
        progress: Progress | None = None,
    ) -> bytes:
        """Run one rclone command; return its stdout, or raise RcloneError with one line.

        A `bounded` call (a small metadata read or write, where a remote that does not
        answer is waited for) may take `timeout` seconds in all, retries included;
        `give_up_at` (a time.monotonic() value) bounds every call of the run. Past either,
        rclone's whole process group is stopped. rclone runs in a process group of its own,
        so an interrupted claude-sync (Ctrl-C, SIGTERM, SIGHUP) stops its transfers too.
        With `progress`, rclone writes its transfer stats every second, and `progress` is
        told each of them as they come (see `Progress`).
        """
        return self.start(args, stdin=stdin, bounded=bounded, progress=progress).finish()

    def start(
        self,
        args: list[str],
        *,
        stdin: bytes | None = None,
        bounded: bool = False,
        progress: Progress | None = None,
    ) -> RcloneCall:
        """Start what `run` runs, and return at once: the caller does other work while
        rclone runs, then waits with `finish` (or gives up with `stop`). The time limits
        count from here."""
        command = self._command(args) + (STATS_FLAGS if progress is not None else [])
        limit, why = self._limit(bounded)
        if limit is not None and limit <= 0:
            raise RcloneError(f"rclone {args[0]} not started: {why} is up")
        # Imported here, not above: a push with nothing to send runs no rclone.
        import subprocess

        log = _LogReader(progress) if progress is not None else None
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if log is None else log.write_end,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise RcloneError(f"rclone not found at {self.binary}") from None
        except PermissionError:
            raise RcloneError(f"rclone at {self.binary} is not executable") from None
        finally:
            if log is not None:
                log.start()
        return RcloneCall(args[0], process, stdin, log, limit, why)

    def _limit(self, bounded: bool) -> tuple[float | None, str]:
        """Seconds this call may take, and which limit that is: the tighter of the timeout
        (for a bounded call) and what is left of the run's time."""
        limits = [(float(self.timeout), "rclone.timeout")] if bounded else []
        if self.give_up_at is not None:
            limits.append((self.give_up_at - time.monotonic(), "the time allowed for this run"))
        return min(limits, default=(None, ""))

    def version(self) -> str:
        return self.run(["version"]).decode().splitlines()[0].strip()

    def obscure(self, secret: str) -> str:
        return self.run(["obscure", "-"], stdin=secret.encode()).decode().strip()

    def mkdir(self, path: str) -> None:
        self.run(["mkdir", path], bounded=True)

    def exists(self, path: str) -> bool:
        """Whether the folder or bucket `path` exists. On S3 this lists the bucket's top
        level, which a token allowed only to read objects may do (unlike HeadBucket)."""
        try:
            self.run(["lsjson", "--stat", path], bounded=True)
        except RemoteNotFound:
            return False
        return True

    def make_bucket(self, path: str) -> None:
        """Create the S3 bucket `path`: the flag wins over the no_check_bucket in the config,
        with which `rclone mkdir` leaves buckets alone."""
        self.run(["mkdir", path, "--s3-no-check-bucket=false"], bounded=True)

    def cat(self, path: str) -> bytes:
        return self.run(["cat", path], bounded=True)

    def rcat(self, path: str, data: bytes) -> None:
        self.run(["rcat", path], stdin=data, bounded=True)

    def list_files(self, path: str) -> list[dict]:
        """Every file below `path` (lsjson entries: Path, Name, Size, ModTime), in one
        listing. ModTime is the server's own where it keeps one (on S3 the upload's, read
        without a request per file); one the remote does not know is UNKNOWN_TIME, far
        ahead, so that it never looks old. Not bounded in total: its length grows with the
        remote (callers have reached the remote already, in a bounded call)."""
        args = ["lsjson", path, "--files-only", "--recursive", "--no-mimetype"]
        args += ["--use-server-modtime", "--default-time", UNKNOWN_TIME]
        return json.loads(self.run(args) or b"[]")

    def delete_files(self, path: str, list_file: Path) -> None:
        """Delete the files named in list_file (relative to `path`), without listing `path`;
        one already gone is no error."""
        self.run(["delete", path, "--files-from-raw", str(list_file)])

    def copyto(self, source: str, destination: str) -> None:
        self.run(["copyto", source, destination])

    def copy_files(
        self, source: str, destination: str, list_file: Path, progress: Progress | None = None
    ) -> None:
        """Copy the files named in list_file (relative to source), without listing either
        side: a download of objects. With `progress`, told how the copy goes every second
        (see `Progress`).

        rclone's check of each copy's checksum is left out: every object is authenticated
        by age and its plaintext checked against its SHA-256 as the pull reads it, and on a
        local remote rclone's check reads every byte twice more."""
        flags = [*self._files_from(list_file), "--ignore-checksum"]
        self.run(["copy", source, destination, *flags], progress=progress)

    def move_files(
        self,
        source: str,
        destination: str,
        list_file: Path,
        ignore_times: bool = False,
        progress: Progress | None = None,
    ) -> None:
        """Send the files named in list_file (relative to source), without listing either
        side; they leave `source`, so that on a remote in a local folder on the same disk
        each is one rename, not a copy. With `ignore_times`, also over a file there of the
        same size and time; with `progress`, as copy_files. The source is a plain path and
        the destination a configured remote: without --server-side-across-configs rclone
        would not rename between the two even on one disk, but copy and delete each file (ten
        times slower on many small ones). It changes nothing for remotes of another type."""
        flags = [*self._files_from(list_file), "--server-side-across-configs"]
        flags += ["--ignore-times"] if ignore_times else []
        self.run(["move", source, destination, *flags], progress=progress)

    def _files_from(self, list_file: Path) -> list[str]:
        """Only the listed files, neither side listed, `transfers` at once."""
        listed = ["--files-from-raw", str(list_file), "--no-traverse"]
        return [*listed, "--transfers", str(self.transfers)]

    def start_mirror(self, source: str, destination: str, include: list[str]) -> RcloneCall:
        """Start making the local folder destination hold exactly source's files matching
        `include` (small metadata: bounded by the timeout). Files are told apart by name and
        size alone: what is mirrored is written once under a new name, never changed in
        place."""
        filters = [flag for pattern in include for flag in ("--include", pattern)]
        return self.start(["sync", source, destination, "--size-only", *filters], bounded=True)
