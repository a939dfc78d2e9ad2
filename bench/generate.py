"""A synthetic ~/.claude: projects with transcripts of realistic sizes, history, settings.

python bench/generate.py DIR [--projects 20] [--sessions 15] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def transcript_line(rng: random.Random, index: int) -> bytes:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 400)))
    entry = {"type": "assistant", "index": index, "message": {"content": text}}
    return json.dumps(entry).encode() + b"\n"


WORDS = [
    "the",
    "a",
    "function",
    "file",
    "test",
    "error",
    "import",
    "value",
    "return",
    "class",
    "sync",
    "remote",
    "key",
]


def generate(root: Path, projects: int, sessions: int, seed: int) -> int:
    """Write the tree; return the number of files."""
    rng = random.Random(seed)
    count = 0
    for p in range(projects):
        folder = root / "projects" / f"-home-user-code-project{p}"
        folder.mkdir(parents=True, exist_ok=True)
        for s in range(sessions):
            lines = int(rng.lognormvariate(3.5, 1.2)) + 1
            with open(folder / f"session-{s:04d}.jsonl", "wb") as out:
                for i in range(lines):
                    out.write(transcript_line(rng, i))
            count += 1
        (folder / "memory").mkdir(exist_ok=True)
        (folder / "memory" / "MEMORY.md").write_text(f"# project {p}\n")
        count += 1
    with open(root / "history.jsonl", "w") as history:
        for i in range(2000):
            history.write(json.dumps({"display": f"prompt {i}", "timestamp": 1700000000000 + i}))
            history.write("\n")
    (root / "settings.json").write_text(json.dumps({"model": "opus"}))
    (root / "agents").mkdir(exist_ok=True)
    for a in range(5):
        (root / "agents" / f"agent{a}.md").write_text(f"agent {a}\n" * 20)
    return count + 2 + 5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    print(generate(arguments.root, arguments.projects, arguments.sessions, arguments.seed))


if __name__ == "__main__":
    main()
