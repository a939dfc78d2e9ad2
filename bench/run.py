"""The benchmark: claude-sync next to plain rclone, on the same trees, in one run.

    .venv/bin/python bench/run.py               # the full table (hours on 2 cores)
    .venv/bin/python bench/run.py --quick       # small trees, one run each: a few minutes
    .venv/bin/python bench/run.py --runs 5 --keep /var/tmp/bench-trees --only noop,many

Prints a Markdown table on stdout (progress on stderr). Each figure is the median of
`--runs` runs (3; 1 with --quick); the runs of claude-sync and of its two references are
interleaved, on the same trees, so a machine busy with something else slows all three.

The references, run by the rclone that claude-sync itself uses (the venv's bin/):

- plain rclone copy: `rclone copy TREE DEST` of the plaintext tree (a no-op push: the same
  copy again; a pull: `rclone copy` from that copy into another folder);
- rclone crypt: `rclone sync TREE crypt:DEST` into an rclone crypt remote (standard file
  name encryption, over the same local folder or loopback S3 server); a pull copies back
  out of it.

claude-sync syncs what a default install syncs plus `todos/` and `file-history/` (added to
`sync.include`, off by default), so it and rclone copy the same files.

Every time is the whole process, from start to exit, Python's start-up included, as a user
waits for it. Peak RSS, twice for claude-sync: its Python process alone, and the largest of
it and the rclone processes it ran; for rclone the two are one. Both are read from /proc
while the process runs (see PeakWatcher for why not from os.wait4).

The loopback S3 server is `rclone serve s3` on 127.0.0.1 (its keys in its environment, not
on argv); it shares the 2 cores, as it would not on a real network, and costs no latency.

Bytes of an append (100 KB of new lines at the end of a transcript): what a push sent is
the sum of the sizes of the files that are new or changed (name, size, mtime or inode) on
the remote folder after it: claude-sync's new objects and journal entry; for rclone, the
whole file written again. What a pull fetched is measured on the remote folder too: every
file's access time is set to 0 before the pull (mtime kept), so that the kernel (relatime)
stamps each file the pull reads; the sum of the sizes of the stamped files is what it read.
Listings and HTTP headers are not counted (the remote is a local folder); a filesystem
mounted noatime would show 0, and the run says so.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from generate import Tree, append, generate, generate_transcript

BIN = Path(sys.executable).parent
RCLONE = str(BIN / "rclone")
CLAUDE_SYNC = str(BIN / "claude-sync")
PASSPHRASE = "benchmark passphrase, not a secret"
EXTRA_INCLUDE = ["todos/", "file-history/"]
GROUPS = ("local", "s3", "noop", "many", "transcript")
STARTED = time.monotonic()


@dataclass(frozen=True)
class Sizes:
    """The trees. The full run's, and --quick's small ones (the same cases, smaller)."""

    tree_files: int = 3_000
    tree_bytes: int = 1_500_000_000
    noop_files: int = 10_000
    noop_bytes: int = 300_000_000
    many_files: int = 100_000
    many_bytes: int = 1_000_000_000
    transcript: int = 1_500_000_000
    target: int = 50_000_000  # the transcript appended to
    append: int = 100_000


FULL = Sizes()
QUICK = Sizes(300, 100_000_000, 1_000, 10_000_000, 3_000, 20_000_000, 100_000_000, 10_000_000)


@dataclass
class Sample:
    """One run of one tool: seconds (or bytes), and peak RSS in bytes: of the process
    alone, and the largest of it and its children (for claude-sync, its rclone runs)."""

    value: float
    own_rss: int = 0
    rss: int = 0


Step = Callable[[], Sample]


@dataclass
class Row:
    order: int  # its place in the table, which is not the order the cases run in
    case: str
    unit: str  # "s" or "B"
    ours: list[Sample] = field(default_factory=list)
    copy: list[Sample] = field(default_factory=list)
    crypt: list[Sample] = field(default_factory=list)


@dataclass
class Device:
    """One machine: its own HOME and CLAUDE_SYNC_HOME; its Claude folder may be a tree."""

    name: str
    home: Path
    claude: Path

    @property
    def sync_home(self) -> Path:
        return self.home / ".claude-sync"

    def environment(self, **extra: str) -> dict[str, str]:
        environment = clean_environment()
        environment.update(
            HOME=str(self.home),
            CLAUDE_CONFIG_DIR=str(self.claude),
            CLAUDE_SYNC_HOME=str(self.sync_home),
            CLAUDE_SYNC_PASSPHRASE=PASSPHRASE,
            **extra,
        )
        return environment


@dataclass
class Copies:
    """A tree as each tool last pushed it (and, once pulled, where each pulled it to)."""

    device: Device  # claude-sync's pushing device
    remote: Path | str  # its remote: a local folder, or a folder in the S3 bucket
    plain: str  # rclone path of the plain copy
    crypt: str  # rclone path in the crypt remote
    puller: Device | None = None
    plain_back: Path | None = None
    crypt_back: Path | None = None


class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


def clean_environment() -> dict[str, str]:
    """This environment without RCLONE_* and CLAUDE_SYNC_* settings that would change
    what is measured."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RCLONE_", "CLAUDE_SYNC_", "CLAUDE_CONFIG_DIR"))
    }


def run(command: list[str], environment: dict[str, str]) -> Sample:
    """Run a command to its end: its wall time, and its peak RSS (see PeakWatcher)."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=environment, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        watcher = PeakWatcher(process.pid)
        process.wait()
        seconds = time.perf_counter() - started
        watcher.stop()
        if process.returncode != 0:
            output.seek(0)
            text = output.read().decode(errors="replace")[-3000:]
            raise BenchError(f"{' '.join(command)} exited {process.returncode}:\n{text}")
    return Sample(seconds, watcher.own, max(watcher.own, watcher.children))


class PeakWatcher:
    """The peak RSS of a process, and of its children, from their VmHWM in /proc, read
    every 20 ms while it runs (growth in a process's last 20 ms, or a child that lives
    less than that, may be missed).

    Not `os.wait4`'s ru_maxrss: exec keeps the peak of the address space it replaces, so
    every child of this benchmark (spawned from it, which held whole tree listings) would
    show at least the benchmark's own peak: a /bin/true "uses" 500 MB once its parent has
    touched 500 MB. Nor ru_maxrss of claude-sync's rclone runs, for the same reason."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.own = 0
        self.children = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.done.is_set():
            own = high_water_mark(self.pid)
            if own is None:  # exited
                return
            self.own = max(self.own, own)
            for child in children_of(self.pid):
                self.children = max(self.children, high_water_mark(child) or 0)
            self.done.wait(0.02)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def high_water_mark(pid: int) -> int | None:
    """The peak resident set of a live process, in bytes (None once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def children_of(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
    return found


def output_of(command: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=True)
    return result.stdout


def files_of(folder: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (size, mtime_ns, inode) of every file below folder."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            status = os.stat(path)
            found[path] = (status.st_size, status.st_mtime_ns, status.st_ino)
    return found


def bytes_written(before: dict[str, tuple[int, int, int]], folder: Path) -> int:
    """The sizes of the files new or changed since `before`: what was sent there."""
    after = files_of(folder)
    return sum(state[0] for path, state in after.items() if before.get(path) != state)


def forget_reads(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Set every file's access time to 0 (mtime kept): relatime then stamps each file
    read from now on. The files, for `bytes_read`."""
    found = files_of(folder)
    for path, (_, mtime, _) in found.items():
        os.utime(path, ns=(0, mtime))
    return found


def bytes_read(before: dict[str, tuple[int, int, int]]) -> int:
    """The sizes of the files of `before` read since `forget_reads`."""
    total = 0
    for path, (size, _, _) in before.items():
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_atime_ns != 0:
                total += size
    return total


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.value for s in samples),
        int(statistics.median(s.own_rss for s in samples)),
        int(statistics.median(s.rss for s in samples)),
    )


def seconds_text(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def bytes_text(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def count_text(files: int, size: int) -> str:
    return f"{files:,} files / {bytes_text(size)}"


class Bench:
    """The trees, the remotes and devices made from them, and the rows measured so far."""

    def __init__(self, work: Path, trees: Path, sizes: Sizes, runs: int, seed: int) -> None:
        self.work = work
        self.tree_folder = trees
        self.sizes = sizes
        self.runs = runs
        self.seed = seed
        self.rows: list[Row] = []
        self.copies: dict[str, Copies] = {}
        self.kept: dict[str, list[Path | str]] = {}
        self.count = 0
        self.rclone_config = work / "rclone.conf"
        self.crypt_root = work / "remotes" / "crypt"  # the local crypt remote's folder
        self.crypt_password = secrets.token_hex(16)
        self.s3: tuple[int, str, str] | None = None  # port, access key, secret key
        self.write_rclone_config()

    # Trees -----------------------------------------------------------------------------

    def tree(self, files: int, size: int) -> Tree:
        """The tree of that shape: generated once, or reused from --keep (a manifest next
        to it says it is complete, and what the append target's size was)."""
        name = f"tree-{files}-{size}-{self.seed}-{self.sizes.target}"
        return self._tree(
            name, lambda root: generate(root, files, size, self.seed, self.sizes.target)
        )

    def transcript_tree(self) -> Tree:
        name = f"transcript-{self.sizes.transcript}-{self.seed}"
        return self._tree(name, lambda root: generate_transcript(root, self.sizes.transcript))

    def _tree(self, name: str, make: Callable[[Path], Tree]) -> Tree:
        root = self.tree_folder / name
        manifest = self.tree_folder / f"{name}.yaml"
        if manifest.exists():
            saved = yaml.safe_load(manifest.read_text())
            tree = Tree(root, saved["files"], saved["size"], root / saved["target"])
            if tree.target.stat().st_size > saved["target_size"]:  # an append not undone
                os.truncate(tree.target, saved["target_size"])
            return tree
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        tree = make(root)
        seconds = time.perf_counter() - started
        saved = {
            "files": tree.files,
            "size": tree.size,
            "target": str(tree.target.relative_to(root)),
            "target_size": tree.target.stat().st_size,
        }
        manifest.write_text(yaml.safe_dump(saved))
        rate = tree.size / seconds / 1e6
        shape = count_text(tree.files, tree.size)
        log(f"generated {name}: {shape} in {seconds:.1f} s ({rate:.0f} MB/s)")
        return tree

    # Remotes, devices, tools -----------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.count}"

    def folder(self, prefix: str) -> Path:
        path = self.work / "remotes" / self.fresh(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def keep(self, key: str, *things: Path | str) -> None:
        """Keep `things` as the latest of `key`, deleting what the previous run kept: one
        run's copies on disk at a time."""
        self.discard(key)
        self.kept[key] = list(things)

    def discard(self, key: str) -> None:
        """Delete what `key` kept: folders here, rclone paths (the S3 server's) with rclone."""
        for old in self.kept.pop(key, []):
            if isinstance(old, Path):
                shutil.rmtree(old, ignore_errors=True)
            else:
                self.rclone("purge", old)

    def write_rclone_config(self) -> None:
        """The references' rclone config: a crypt remote over a local folder, and, once the
        S3 server runs, the S3 remote and a crypt remote over it. The crypt password is in
        this file (obscured, as rclone wants it), never on argv."""
        obscured = output_of([RCLONE, "obscure", "-"], stdin=self.crypt_password).strip()
        self.crypt_root.mkdir(parents=True, exist_ok=True)
        text = (
            f"[crypt]\ntype = crypt\nremote = {self.crypt_root}\npassword = {obscured}\n"
            "filename_encryption = standard\ndirectory_name_encryption = true\n\n"
        )
        if self.s3 is not None:
            port, access, secret = self.s3
            text += (
                f"[s3]\ntype = s3\nprovider = Other\nendpoint = http://127.0.0.1:{port}\n"
                f"access_key_id = {access}\nsecret_access_key = {secret}\n"
                "region = us-east-1\nforce_path_style = true\nno_check_bucket = true\n\n"
                f"[s3crypt]\ntype = crypt\nremote = s3:bucket/crypt\npassword = {obscured}\n"
                "filename_encryption = standard\ndirectory_name_encryption = true\n"
            )
        self.rclone_config.write_text(text)
        self.rclone_config.chmod(0o600)

    def rclone(self, *args: str) -> Sample:
        environment = clean_environment()
        environment["RCLONE_CONFIG"] = str(self.rclone_config)
        return run([RCLONE, *args], environment)

    def device(self, claude: Path | None = None) -> Device:
        name = self.fresh("device")
        home = self.work / "devices" / name
        home.mkdir(parents=True)
        return Device(name, home, claude or home / ".claude")

    def claude_sync(self, device: Device, *args: str, **extra: str) -> Sample:
        return run([CLAUDE_SYNC, *args], device.environment(**extra))

    def init(self, device: Device, remote: Path | str) -> None:
        """`claude-sync init` on a local folder, or on the loopback S3 server (`remote` is
        then the folder in the bucket); the S3 keys go through the environment."""
        if isinstance(remote, Path):
            self.claude_sync(
                device, "init", "--local", str(remote), "--device-name", device.name, "--yes"
            )
        else:
            assert self.s3 is not None
            port, access, secret = self.s3
            self.claude_sync(
                device,
                "init",
                "--provider", "s3",
                "--set", "provider=Other",
                "--set", f"endpoint=http://127.0.0.1:{port}",
                "--set", "region=us-east-1",
                "--set", "bucket=bucket",
                "--set", f"path={remote}",
                "--device-name", device.name,
                "--yes",
                CLAUDE_SYNC_FIELD_ACCESS_KEY_ID=access,
                CLAUDE_SYNC_FIELD_SECRET_ACCESS_KEY=secret,
            )  # fmt: skip
        config_path = device.sync_home / "config.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["sync"]["include"] = EXTRA_INCLUDE
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    @contextlib.contextmanager
    def s3_server(self) -> Iterator[None]:
        """`rclone serve s3` on a free port of 127.0.0.1, for the duration."""
        data = self.work / "s3"
        (data / "bucket").mkdir(parents=True, exist_ok=True)
        port, access, secret = free_port(), "bench" + secrets.token_hex(4), secrets.token_hex(16)
        environment = clean_environment()
        environment["RCLONE_CONFIG"] = str(self.work / "empty.conf")
        environment["RCLONE_AUTH_KEY"] = f'"{access},{secret}"'  # one key pair, not two items
        command = [RCLONE, "serve", "s3", str(data), "--addr", f"127.0.0.1:{port}"]
        with open(self.work / "s3.log", "ab") as server_log:
            server = subprocess.Popen(
                command, env=environment, stdout=server_log, stderr=server_log
            )
        try:
            deadline = time.monotonic() + 15
            while not port_open(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"rclone serve s3 did not start: see {self.work / 's3.log'}")
                time.sleep(0.05)
            self.s3 = (port, access, secret)
            self.write_rclone_config()
            yield
        finally:
            server.terminate()
            server.wait()
            self.s3 = None

    # Measuring ---------------------------------------------------------------------------

    def compare(self, order: int, case: str, ours: Step, copy: Step, crypt: Step) -> None:
        """Run the three `runs` times, interleaved, and add their row; with order 0, once,
        unrecorded: the set-up a later case needs, when the case that makes it is not run."""
        row = Row(order, case, "s")
        for _ in range(self.runs if order else 1):
            row.ours.append(ours())
            row.copy.append(copy())
            row.crypt.append(crypt())
        if order:
            self.add(row)
        else:
            self.show(row, "set-up, not in the table: ")

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.show(row)

    def show(self, row: Row, prefix: str = "") -> None:
        text = seconds_text if row.unit == "s" else bytes_text
        log(
            f"{prefix}{row.case}: claude-sync {text(median(row.ours).value)}, "
            f"copy {text(median(row.copy).value)}, crypt {text(median(row.crypt).value)}"
        )

    # The cases ---------------------------------------------------------------------------

    def initial_push(self, order: int, case: str, tree: Tree, s3: bool = False) -> Copies:
        """A first push into an empty remote: claude-sync from a new device, `rclone copy`,
        `rclone sync` into crypt. Every run starts empty; the last run's copies stay for the
        cases that follow (local ones in self.copies)."""
        key = tree.root.name + ("-s3" if s3 else "")
        made: dict = {}

        def ours() -> Sample:
            device = self.device(tree.root)
            name = self.fresh("cs")
            remote: Path | str = name if s3 else self.work / "remotes" / name
            self.keep(f"{key}.ours", device.home, f"s3:bucket/{name}" if s3 else remote)
            self.init(device, remote)
            made.update(device=device, remote=remote)
            return self.claude_sync(device, "push", "-q")

        def copy() -> Sample:
            name = self.fresh("plain")
            made["plain"] = f"s3:bucket/{name}" if s3 else str(self.work / "remotes" / name)
            self.keep(f"{key}.copy", made["plain"] if s3 else Path(made["plain"]))
            return self.rclone("copy", str(tree.root), made["plain"])

        def crypt() -> Sample:
            made["crypt"] = f"{'s3crypt' if s3 else 'crypt'}:{self.fresh('crypt')}"
            self.keep(f"{key}.crypt", made["crypt"])
            return self.rclone("sync", str(tree.root), made["crypt"])

        self.compare(order, case, ours, copy, crypt)
        copies = Copies(made["device"], made["remote"], made["plain"], made["crypt"])
        if not s3:
            self.copies[key] = copies
        return copies

    def fresh_pull(self, order: int, case: str, tree: Tree) -> Copies:
        """A new device pulls everything; rclone copies back from the plain copy and out of
        the crypt remote, each into an empty folder."""
        key = tree.root.name
        copies = self.copies.get(key) or self.pushed(tree)

        def ours() -> Sample:
            device = self.device()
            self.keep(f"{key}.puller", device.home)
            self.init(device, copies.remote)
            copies.puller = device
            return self.claude_sync(device, "pull", "-q")

        def copy() -> Sample:
            copies.plain_back = self.folder("back")
            self.keep(f"{key}.back", copies.plain_back)
            return self.rclone("copy", copies.plain, str(copies.plain_back))

        def crypt() -> Sample:
            copies.crypt_back = self.folder("cryptback")
            self.keep(f"{key}.cryptback", copies.crypt_back)
            return self.rclone("copy", copies.crypt, str(copies.crypt_back))

        self.compare(order, case, ours, copy, crypt)
        return copies

    def pushed(self, tree: Tree) -> Copies:
        """The tree's copies, pushed once (untimed) if no case has pushed them yet."""
        copies = self.copies.get(tree.root.name)
        if copies is None:
            copies = self.initial_push(0, f"initial push, {tree.files:,} files", tree)
        return copies

    def pulled(self, tree: Tree) -> Copies:
        """The tree's copies, pushed and pulled once (untimed) if no case has yet."""
        copies = self.copies.get(tree.root.name)
        if copies is None or copies.puller is None:
            copies = self.fresh_pull(0, f"fresh pull, {tree.files:,} files", tree)
        return copies

    def noop_pull(self, order: int, case: str, copies: Copies) -> None:
        """A pull with nothing new; rclone copies again into folders that hold it all."""
        assert copies.puller and copies.plain_back and copies.crypt_back
        puller, plain_back, crypt_back = copies.puller, copies.plain_back, copies.crypt_back
        self.compare(
            order,
            case,
            lambda: self.claude_sync(puller, "pull", "-q"),
            lambda: self.rclone("copy", copies.plain, str(plain_back)),
            lambda: self.rclone("copy", copies.crypt, str(crypt_back)),
        )

    def noop_push(self, order: int, case: str, tree: Tree) -> None:
        """A push with nothing changed; rclone copies and syncs the unchanged tree again."""
        copies = self.pushed(tree)
        self.compare(
            order,
            case,
            lambda: self.claude_sync(copies.device, "push", "-q"),
            lambda: self.rclone("copy", str(tree.root), copies.plain),
            lambda: self.rclone("sync", str(tree.root), copies.crypt),
        )

    def append(self, order: int, tree: Tree, shape: str) -> None:
        """100 KB of new lines at the end of the target transcript, then a push and a pull:
        the bytes each sends and fetches (see the module's docstring for how). Each run
        appends again; the target is cut back to its size afterwards."""
        copies = self.pulled(tree)
        assert copies.puller and copies.plain_back and copies.crypt_back
        puller, plain_back, crypt_back = copies.puller, copies.plain_back, copies.crypt_back
        assert isinstance(copies.remote, Path)
        remote, plain, crypt_root = copies.remote, Path(copies.plain), self.crypt_root
        original = tree.target.stat().st_size
        what = f"{bytes_text(self.sizes.append)} append to a {bytes_text(original)} transcript"
        push = Row(order, f"push after a {what}, {shape}: bytes sent", "B")
        pull = Row(order + 1, "pull of it: bytes fetched", "B")
        try:
            for index in range(self.runs):
                append(tree.target, self.sizes.append, seed=1000 + index)
                push.ours.append(
                    sent(remote, lambda: self.claude_sync(copies.device, "push", "-q"))
                )
                push.copy.append(
                    sent(plain, lambda: self.rclone("copy", str(tree.root), copies.plain))
                )
                push.crypt.append(
                    sent(crypt_root, lambda: self.rclone("sync", str(tree.root), copies.crypt))
                )
                pull.ours.append(fetched(remote, lambda: self.claude_sync(puller, "pull", "-q")))
                pull.copy.append(
                    fetched(plain, lambda: self.rclone("copy", copies.plain, str(plain_back)))
                )
                pull.crypt.append(
                    fetched(crypt_root, lambda: self.rclone("copy", copies.crypt, str(crypt_back)))
                )
        finally:
            os.truncate(tree.target, original)
            self.drop(tree)  # its copies hold the appended transcript: no longer the tree's
        if not any(sample.value for sample in pull.copy):
            log("no access times recorded here (noatime?): the pull's bytes read as 0")
        self.add(push)
        self.add(pull)

    def drop(self, tree: Tree) -> None:
        """Delete every copy of `tree` (remotes, devices, folders pulled into)."""
        self.copies.pop(tree.root.name, None)
        for key in list(self.kept):
            if key.split(".")[0] in (tree.root.name, tree.root.name + "-s3"):
                self.discard(key)

    # The groups, each on its own trees ---------------------------------------------------

    def local_cases(self) -> None:
        s = self.sizes
        tree = self.tree(s.tree_files, s.tree_bytes)
        shape = count_text(tree.files, tree.size)
        self.initial_push(1, f"initial push, {shape}, local", tree)
        self.fresh_pull(8, f"fresh pull, {bytes_text(tree.size)}, local", tree)
        self.noop_pull(6, "no-op pull, local", self.copies[tree.root.name])
        self.append(11, tree, f"{tree.files:,} files")
        self.drop(tree)

    def s3_cases(self) -> None:
        """On the loopback S3 server. For the no-op pull, the pushing device pulls (nothing
        is new for it) and rclone copies back into folders that one untimed copy filled."""
        s = self.sizes
        tree = self.tree(s.tree_files, s.tree_bytes)
        with self.s3_server():
            copies = self.initial_push(
                2, f"initial push, {count_text(tree.files, tree.size)}, loopback S3", tree, s3=True
            )
            copies.puller = copies.device
            copies.plain_back, copies.crypt_back = self.folder("back"), self.folder("cryptback")
            self.keep(f"{tree.root.name}-s3.back", copies.plain_back, copies.crypt_back)
            row = Row(0, "first pull, rclone copies back, loopback S3", "s")
            row.ours.append(self.claude_sync(copies.device, "pull", "-q"))
            row.copy.append(self.rclone("copy", copies.plain, str(copies.plain_back)))
            row.crypt.append(self.rclone("copy", copies.crypt, str(copies.crypt_back)))
            self.show(row, "set-up, not in the table: ")
            self.noop_pull(7, "no-op pull, loopback S3", copies)
            self.drop(tree)
        shutil.rmtree(self.work / "s3")

    def noop_cases(self) -> None:
        tree = self.tree(self.sizes.noop_files, self.sizes.noop_bytes)
        self.noop_push(4, f"no-op push, {tree.files:,} files", tree)
        self.drop(tree)

    def many_cases(self) -> None:
        s = self.sizes
        tree = self.tree(s.many_files, s.many_bytes)
        self.initial_push(3, f"initial push, {count_text(tree.files, tree.size)}, local", tree)
        self.noop_push(5, f"no-op push, {tree.files:,} files", tree)
        self.append(13, tree, f"{tree.files:,} files")
        self.drop(tree)

    def transcript_cases(self) -> None:
        tree = self.transcript_tree()
        self.initial_push(9, f"push of one {bytes_text(tree.size)} transcript, local", tree)
        self.fresh_pull(10, "pull of it, local", tree)
        self.drop(tree)


def sent(folder: Path, step: Step) -> Sample:
    """Run `step`; the bytes of the files it made or changed below folder."""
    before = files_of(folder)
    sample = step()
    return Sample(bytes_written(before, folder), sample.own_rss, sample.rss)


def fetched(folder: Path, step: Step) -> Sample:
    """Run `step`; the bytes of the files below folder it read."""
    before = forget_reads(folder)
    sample = step()
    return Sample(bytes_read(before), sample.own_rss, sample.rss)


def ratio(ours: float, reference: float) -> str:
    return f"{ours / reference:.3g}" if reference else "—"


def megabytes(rss: int) -> str:
    return f"{rss / 1e6:.0f}"


def table(rows: list[Row]) -> str:
    """The Markdown table: medians, claude-sync over each reference, peak RSS in MB."""
    lines = [
        "| case | claude-sync | plain rclone copy | rclone crypt | ratio to copy / crypt "
        "| peak RSS, MB: claude-sync alone / with rclone (copy / crypt) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(rows, key=lambda row: row.order):
        ours, copy, crypt = median(row.ours), median(row.copy), median(row.crypt)
        show = seconds_text if row.unit == "s" else bytes_text
        lines.append(
            f"| {row.case} | {show(ours.value)} | {show(copy.value)} | {show(crypt.value)} "
            f"| {ratio(ours.value, copy.value)} / {ratio(ours.value, crypt.value)} "
            f"| {megabytes(ours.own_rss)} / {megabytes(ours.rss)} "
            f"({megabytes(copy.rss)} / {megabytes(crypt.rss)}) |"
        )
    return "\n".join(lines)


def machine() -> str:
    """CPU, cores, Python, rclone and claude-sync: what the figures depend on."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            cpu,
        )
    rclone_version = output_of([RCLONE, "version"]).splitlines()[0]
    claude_sync_version = output_of([CLAUDE_SYNC, "--version"]).strip()
    commit = "unknown commit"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        here = str(Path(__file__).resolve().parent)
        commit = output_of(["git", "-C", here, "describe", "--always", "--dirty"]).strip()
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {rclone_version}, "
        f"{claude_sync_version} ({commit})"
    )


def compile_claude_sync() -> None:
    """Compile claude-sync's modules to bytecode first, as `pip install` does: from an
    editable checkout (or with PYTHONDONTWRITEBYTECODE set) every run would compile each
    changed module again, and that is no cost a user pays."""
    import claude_sync

    compileall.compile_dir(Path(claude_sync.__file__).parent, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, help="runs per figure, their median shown (3; --quick 1)"
    )
    parser.add_argument("--quick", action="store_true", help="small trees: a few minutes")
    parser.add_argument(
        "--keep",
        type=Path,
        help="generate the trees here once and reuse them (empty it after changing generate.py)",
    )
    parser.add_argument("--only", help=f"some of: {','.join(GROUPS)}")
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    groups = arguments.only.split(",") if arguments.only else list(GROUPS)
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group {', '.join(sorted(unknown))}; the groups: {', '.join(GROUPS)}")
    runs = arguments.runs or (1 if arguments.quick else 3)
    sizes = QUICK if arguments.quick else FULL
    compile_claude_sync()
    with tempfile.TemporaryDirectory(prefix="claude-sync-bench-") as scratch:
        work = Path(scratch)
        trees = arguments.keep or work / "trees"
        trees.mkdir(parents=True, exist_ok=True)
        bench = Bench(work, trees, sizes, runs, arguments.seed)
        cases = {
            "local": bench.local_cases,
            "s3": bench.s3_cases,
            "noop": bench.noop_cases,
            "many": bench.many_cases,
            "transcript": bench.transcript_cases,
        }
        for group in GROUPS:
            if group in groups:
                cases[group]()
    print(table(bench.rows))
    print()
    plural = "s" if runs > 1 else ""
    print(f"Median of {runs} run{plural}; ratio: claude-sync / reference. {machine()}.")
    log("done")


if __name__ == "__main__":
    main()
