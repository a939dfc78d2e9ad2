"""Run the real Claude Code CLI as one test "device": offline, against FakeAnthropic.

Why: claude-sync's end-to-end tests need real transcripts, hooks and resumes, and only the real
CLI makes those. Each device has its own HOME and CLAUDE_CONFIG_DIR; the model is a
FakeAnthropic; the CLI's other traffic is switched off by environment variables.

    claude = find_claude()  # None -> pytest.skip(SKIP_REASON)
    with FakeAnthropic(isolate=True) as api:
        device = ClaudeCode(claude, home, api)
        result = device.run("-p", "hello", cwd=project)

Network: with ``FakeAnthropic(isolate=True)`` the CLI runs under ``nsenter`` in the fake's
own network namespace (loopback only), where nothing but the fake can be reached. Hooks run
there too, so a hook that must reach a server in the ordinary namespace (rclone serve s3 and
the like) needs ``isolate=False``; the variables below keep the CLI itself to one connection,
to ANTHROPIC_BASE_URL (checked with strace on 2.1.328). Without root ``isolate`` falls back to
the ordinary namespace.

Measured on 2.1.328: ``claude -p`` needs no login, onboarding or trust flag in a fresh HOME,
and a run takes about 1 s (budget 30 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_anthropic import FakeAnthropic

ENV_VAR = "CLAUDE_SYNC_TEST_CLAUDE"
VERSION = "2.1.328"  # the version these tests were written against
SKIP_REASON = (
    f"Claude Code CLI not found: set {ENV_VAR} or put `claude` on PATH "
    f"(npm install --prefix DIR @anthropic-ai/claude-code@{VERSION})"
)
TIMEOUT = 60.0


def find_claude() -> str | None:
    """$CLAUDE_SYNC_TEST_CLAUDE, else `claude` on PATH, else None (the caller skips).

    An explicit setting is returned even when it does not run, so a typo fails loudly.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return shutil.which(explicit) or explicit
    return shutil.which("claude")


def claude_environment(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """The whole environment of one device's CLI: nothing else is inherited but PATH.

    Not inheriting keeps a developer's own ANTHROPIC_*, CLAUDE_* and CLAUDECODE (set when the
    tests themselves run inside Claude Code) out of the device.
    """
    bin_dir = str(Path(sys.executable).parent)  # this venv's claude-sync, for hook commands
    environment = {
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", os.defpath)]),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_TMPDIR": str(home / "tmp"),  # else it writes /tmp/claude-UID, /tmp/cc-socks
        "ANTHROPIC_BASE_URL": api_url,
        "ANTHROPIC_API_KEY": "dummy",
        # Without these the CLI looks up other hosts in DNS and probes HEAD /api/hello.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # Interactive sessions otherwise try to fetch the official plugin marketplace.
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
    }
    environment.update(extra)
    return environment


@dataclass
class ClaudeCode:
    """The CLI as one device, talking to `api`; `extra_env` adds to (or overrides) its env."""

    binary: str
    home: Path
    api: FakeAnthropic
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.home / ".claude"

    def environment(self) -> dict[str, str]:
        return claude_environment(self.home, self.api.url, **self.extra_env)

    def run(
        self, *args: str, cwd: Path, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """`claude ARGS` in `cwd`, inside the fake's namespace when it has one."""
        argv = [self.binary, *args]
        if self.api.netns is not None:
            argv = ["nsenter", f"--net={self.api.netns}", "--", *argv]
        return subprocess.run(
            argv,
            cwd=cwd,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def transcript(self, session_id: str) -> Path:
        """projects/<cwd with every non-alphanumeric turned into '-'>/<session_id>.jsonl."""
        found = sorted(self.config_dir.glob(f"projects/*/{session_id}.jsonl"))
        assert len(found) == 1, f"{session_id}: {found}"
        return found[0]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def message_texts(body: dict[str, Any]) -> list[str]:
    """Every text in a /v1/messages request body's `messages`, in order (for assertions)."""
    texts: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(block["text"] for block in content or [] if block.get("type") == "text")
    return texts
