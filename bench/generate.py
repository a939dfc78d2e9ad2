"""A synthetic ~/.claude, deterministic from a seed, shaped like a long-used one.

    python bench/generate.py DIR --files 3000 --size 1.5G [--seed 1]
    python bench/generate.py DIR --transcript 1.5G          # one big transcript only

What claude-sync costs depends on the number of files (a stat, a state entry, a journal line
each), on the bytes (hashing, zstd, age) and on how well they compress, so the tree copies
all three from a real ~/.claude:

- projects/<encoded path>/<uuid>.jsonl: transcripts, sizes log-normal (many small, a few of
  tens of MB), with one of a fixed size (`target`) for the append benchmark;
- projects/<encoded path>/<uuid>/subagents/*.jsonl and tool-results/*.txt, memory/*.md;
- todos/*.json and file-history/<session>/<hash>@v<n>: the many small files;
- history.jsonl, settings.json, CLAUDE.md, agents/, commands/.

Transcript lines are Claude Code's JSON lines (uuids, timestamps, usage, tool results whose
output is repeated in `toolUseResult` as Claude Code does), their text drawn from a pool of
prose, code and some base64, so zstd's ratio is a realistic 3-6x (about 4x), not the 100x
of repeated lines. Speed: the pool (~12 MB) is made once with bulk `random.choices`; each
line is then one f-string around a pool entry, so 1.5 GB takes seconds (the disk is the
limit), not minutes. zstd at its default level looks back a few MB, much less than the
pool, so an entry drawn again far away in a file does not compress away.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POOL_BYTES = 12_000_000
WRITE_CHUNK = 4_000_000
SYLLABLES = [consonant + vowel for consonant in "ktrmnslpvdghbjz" for vowel in "aeiou"]
CODE_TEXT = "def return if else for in import from class self None True await"
CODE_WORDS = CODE_TEXT.split()
COMMON_TEXT = "the a of to and is in that it for on with as this be are you can file we"
COMMON = COMMON_TEXT.split()
INDENTS = ("", "    ", "        ", "            ")
NUMBERS = [str(n) for n in range(0, 10_000, 7)]
CLOCK = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


@dataclass
class Tree:
    """What `generate` wrote: the folder, its file count and bytes, the append target."""

    root: Path
    files: int
    size: int
    target: Path


def vocabulary(rng: random.Random, count: int) -> list[str]:
    """Pseudo-words of 1-4 syllables, the common English words first (Zipf makes them
    frequent)."""
    words = list(COMMON)
    while len(words) < count:
        words.append("".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))))
    return words


class Pool:
    """Text for file contents: whole transcript messages (JSON, one kind each), and one raw
    text blob that small files are sliced from. Built once per seed, in about a second:
    every random draw is a bulk `choices`, never one call per word."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = vocabulary(rng, 4000)
        # Zipf's law by repetition: word r appears about 400/r times, so plain `choices`
        # (no weights, no bisect) draws the common words often.
        self.zipf = [
            w for rank, w in enumerate(self.words) for _ in range(max(1, 400 // (rank + 1)))
        ]
        self.zipf += [w + p for w in self.words[:60] for p in (".", ",", ".\n\n")]
        raw: list[str] = []
        total = 0
        while total < POOL_BYTES:
            size = min(40_000, max(40, int(rng.lognormvariate(7.0, 1.1))))
            body = self.body(size)
            raw.append(body)
            total += len(body)
        self.text = "\n".join(raw)
        kinds = rng.choices((user_message, assistant_message, tool_message), (2, 5, 3), k=len(raw))
        self.messages = [
            kind(json.dumps(body), uuid(rng)) for kind, body in zip(kinds, raw, strict=True)
        ]

    def body(self, size: int) -> str:
        """About `size` characters of prose (55%), code (40%) or base64 (5%)."""
        kind = self.rng.random()
        if kind < 0.55:
            return " ".join(self.rng.choices(self.zipf, k=size // 6 + 1))
        if kind < 0.95:
            return self.code(size)
        return base64.b64encode(self.rng.randbytes(size * 3 // 4)).decode()

    def code(self, size: int) -> str:
        count = size // 40 + 1
        choices = self.rng.choices
        names = self.words[40:400]
        parts = zip(
            choices(INDENTS, k=count),
            choices(CODE_WORDS, k=count),
            choices(names, k=count),
            choices(names, k=count),
            choices(names, k=count),
            choices(NUMBERS, k=count),
            strict=True,
        )
        return "\n".join(f"{i}{k} {a}_{b}({c}, {n}) -> {b}.{a}" for i, k, a, b, c, n in parts)


def user_message(body: str, me: str) -> str:
    return f'"type":"user","message":{{"role":"user","content":{body}}}'


def assistant_message(body: str, me: str) -> str:
    tokens = int(me[:5], 16)
    return (
        f'"type":"assistant","message":{{"id":"msg_{me[:8]}{me[24:]}",'
        f'"type":"message","role":"assistant","model":"claude-opus-4-5",'
        f'"content":[{{"type":"text","text":{body}}}],"stop_reason":null,'
        f'"usage":{{"input_tokens":{tokens},"output_tokens":{len(body) // 4},'
        f'"cache_read_input_tokens":{tokens * 3}}}}},'
        f'"requestId":"req_{me[9:13]}{me[:8]}{me[24:]}"'
    )


def tool_message(body: str, me: str) -> str:
    """A tool result: Claude Code writes the output twice, in the message and in
    toolUseResult (zstd finds the second copy, as it does in real transcripts)."""
    return (
        f'"type":"user","message":{{"role":"user","content":[{{"tool_use_id":'
        f'"toolu_{me[:8]}{me[24:]}","type":"tool_result","content":{body}}}]}},'
        f'"toolUseResult":{{"stdout":{body},"stderr":"","interrupted":false}}'
    )


def uuid(rng: random.Random) -> str:
    return as_uuid(f"{rng.getrandbits(128):032x}")


def as_uuid(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def transcript_lines(pool: Pool, rng: random.Random, cwd: str, session: str) -> Iterator[str]:
    """Endless Claude Code transcript lines for one session: user prompts, assistant text,
    tool results, each with its own uuid, its parent's, and a later timestamp."""
    parent = "null"
    second = rng.randint(0, 86_400 * 300)
    head = (
        f'"isSidechain":false,"userType":"external","cwd":"{cwd}","sessionId":"{session}",'
        f'"version":"2.1.3","gitBranch":"main"'
    )
    date = ""
    while True:
        messages = rng.choices(pool.messages, k=64)
        steps = rng.choices(range(1, 90), k=64)
        ids = rng.randbytes(16 * 64).hex()
        for index, (message, step) in enumerate(zip(messages, steps, strict=True)):
            me = as_uuid(ids[index * 32 : index * 32 + 32])
            second += step
            day, rest = divmod(second, 86_400)
            if rest < step or not date:
                date = f"2025-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}"
            stamp = f"{date}T{CLOCK[rest]}.{step * 11:03d}Z"
            yield (
                f'{{"parentUuid":{parent},{head},{message},"uuid":"{me}","timestamp":"{stamp}"}}\n'
            )
            parent = f'"{me}"'


def write_transcript(path: Path, size: int, pool: Pool, rng: random.Random, cwd: str) -> int:
    """Write (or append to) a transcript until it has grown by at least `size` bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    session = path.stem if len(path.stem) == 36 else uuid(rng)
    written = 0
    with open(path, "ab") as out:
        chunk: list[str] = []
        chunk_size = 0
        for line in transcript_lines(pool, rng, cwd, session):
            chunk.append(line)
            chunk_size += len(line)
            if chunk_size >= WRITE_CHUNK or written + chunk_size >= size:
                written += out.write("".join(chunk).encode())
                chunk, chunk_size = [], 0
                if written >= size:
                    return written
    raise AssertionError("transcript_lines never ends")


def slice_text(pool: Pool, rng: random.Random, size: int) -> bytes:
    start = rng.randrange(max(1, len(pool.text) - size))
    return pool.text[start : start + size].encode()


def lognormal_sizes(rng: random.Random, count: int, median: float, sigma: float) -> list[int]:
    return [max(30, int(rng.lognormvariate(0, sigma) * median)) for _ in range(count)]


def project_name(pool: Pool, rng: random.Random) -> str:
    return "-".join(rng.choices(pool.words[30:600], k=rng.randint(1, 2)))


def generate(root: Path, files: int, size: int, seed: int = 1, target: int = 50_000_000) -> Tree:
    """Write a tree of exactly `files` files (at least 9) and about `size` bytes into
    `root`; one transcript has `target` bytes (a quarter of `size` at most) for the append
    benchmark."""
    rng = random.Random(seed)
    pool = Pool(rng)
    fixed = 8  # history.jsonl, settings.json, CLAUDE.md, 3 agents, 2 commands
    rest = max(1, files - fixed)
    counts = {
        "transcripts": max(1, rest * 15 // 100),
        "subagents": rest * 4 // 100,
        "tool_results": rest * 4 // 100,
        "memory": rest * 2 // 100,
        "todos": rest * 15 // 100,
    }
    counts["file_history"] = rest - sum(counts.values())
    small = {
        "subagents": lognormal_sizes(rng, counts["subagents"], 20_000, 1.3),
        "tool_results": lognormal_sizes(rng, counts["tool_results"], 6_000, 1.2),
        "memory": lognormal_sizes(rng, counts["memory"], 1_500, 0.8),
        "todos": lognormal_sizes(rng, counts["todos"], 400, 0.8),
        "file_history": lognormal_sizes(rng, counts["file_history"], 3_000, 1.2),
    }
    small_total = sum(sum(sizes) for sizes in small.values())
    if small_total > size * 0.35:  # a tree of many files but few bytes: shrink the small ones
        scale = size * 0.35 / small_total
        small = {k: [max(30, int(s * scale)) for s in v] for k, v in small.items()}
        small_total = sum(sum(sizes) for sizes in small.values())
    history_size = max(2_000, min(4_000_000, size // 100))
    target = min(target, size // 4)
    budget = max(0, size - small_total - history_size - target)
    weights = [rng.lognormvariate(0, 1.6) for _ in range(counts["transcripts"] - 1)]
    transcript_sizes = [min(300_000_000, max(500, int(w / sum(weights) * budget))) for w in weights]

    project_count = min(80, max(1, counts["transcripts"] // 25))
    projects = [f"/home/user/code/{project_name(pool, rng)}-{i}" for i in range(project_count)]
    project_weights = [1 / (i + 1) for i in range(project_count)]
    sessions: list[tuple[str, str]] = []  # (project path, session id)

    def folder(project: str) -> Path:
        return root / "projects" / re.sub(r"[^A-Za-z0-9]", "-", project)

    def transcript(project: str, length: int) -> Path:
        session = uuid(rng)
        sessions.append((project, session))
        path = folder(project) / f"{session}.jsonl"
        write_transcript(path, length, pool, rng, project)
        return path

    root.mkdir(parents=True, exist_ok=True)
    target_path = transcript(projects[0], target)
    for length in transcript_sizes:
        transcript(rng.choices(projects, weights=project_weights)[0], length)

    for length in small["subagents"]:
        project, session = rng.choice(sessions)
        path = folder(project) / session / "subagents" / f"agent-{uuid(rng)[:8]}.jsonl"
        write_transcript(path, length, pool, rng, project)
    for length in small["tool_results"]:
        project, session = rng.choice(sessions)
        path = folder(project) / session / "tool-results" / f"toolu_{uuid(rng)[:18]}.txt"
        write_file(path, slice_text(pool, rng, length))
    for index, length in enumerate(small["memory"]):
        project = projects[index % project_count]
        path = folder(project) / "memory" / f"{project_name(pool, rng)}-{index}.md"
        write_file(path, b"# Notes\n\n" + slice_text(pool, rng, length))
    for length in small["todos"]:
        _, session = rng.choice(sessions)
        todos = [
            {"content": slice_text(pool, rng, 60).decode(), "status": "completed", "id": str(i)}
            for i in range(max(1, length // 110))
        ]
        write_file(root / "todos" / f"{session}-agent-{uuid(rng)}.json", json.dumps(todos).encode())
    for length in small["file_history"]:
        _, session = rng.choice(sessions)
        name = f"{uuid(rng)[:16].replace('-', '')}@v{rng.randint(1, 9)}"
        write_file(root / "file-history" / session / name, slice_text(pool, rng, length))

    write_history(root / "history.jsonl", history_size, pool, rng, projects)
    write_file(root / "settings.json", json.dumps({"model": "opus", "theme": "dark"}).encode())
    write_file(root / "CLAUDE.md", b"# Global instructions\n\n" + slice_text(pool, rng, 2000))
    for name in ("reviewer", "planner", "tester"):
        write_file(root / "agents" / f"{name}.md", slice_text(pool, rng, 1500))
    for name in ("commit", "release"):
        write_file(root / "commands" / f"{name}.md", slice_text(pool, rng, 800))
    return Tree(root, files, tree_size(root), target_path)


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # a name drawn twice: keep the count exact with another name
        path = path.with_name(path.name + "-2")
    path.write_bytes(data)


def write_history(
    path: Path, size: int, pool: Pool, rng: random.Random, projects: list[str]
) -> None:
    lines = []
    total = 0
    timestamp = 1_735_000_000_000
    while total < size:
        timestamp += rng.randint(1_000, 3_600_000)
        entry = {
            "display": slice_text(pool, rng, rng.randint(10, 300)).decode(),
            "pastedContents": {},
            "timestamp": timestamp,
            "project": rng.choice(projects),
        }
        line = json.dumps(entry) + "\n"
        lines.append(line)
        total += len(line)
    path.write_text("".join(lines))


def generate_transcript(root: Path, size: int, seed: int = 1) -> Tree:
    """A Claude folder holding one transcript of `size` bytes (the one-big-file benchmark)."""
    rng = random.Random(seed)
    pool = Pool(rng)
    project = "/home/user/code/monorepo"
    path = root / "projects" / "-home-user-code-monorepo" / f"{uuid(rng)}.jsonl"
    write_transcript(path, size, pool, rng, project)
    return Tree(root, 1, path.stat().st_size, path)


def append(path: Path, size: int, seed: int) -> int:
    """Append about `size` bytes of new transcript lines, as a continued session does."""
    rng = random.Random(seed)
    return write_transcript(path, size, Pool(rng), rng, "/home/user/code/append")


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def parse_size(text: str) -> int:
    """'1.5G', '150M', '200k' or a plain number of bytes."""
    units = {"k": 10**3, "m": 10**6, "g": 10**9}
    text = text.strip().lower().rstrip("b")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--size", type=parse_size, default=parse_size("1.5G"))
    parser.add_argument("--transcript", type=parse_size, help="one transcript of this size")
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    if arguments.transcript:
        tree = generate_transcript(arguments.root, arguments.transcript, arguments.seed)
    else:
        tree = generate(arguments.root, arguments.files, arguments.size, arguments.seed)
    print(f"{tree.root}: {tree.files} files, {tree.size / 1e6:.1f} MB, target {tree.target}")


if __name__ == "__main__":
    main()
