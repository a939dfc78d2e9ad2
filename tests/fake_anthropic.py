"""A fake Anthropic Messages API on 127.0.0.1, for running the real Claude Code CLI in tests.

Why: the end-to-end tests run the real `claude` binary (ANTHROPIC_BASE_URL pointed here) to
produce real transcripts, hook calls and resumes, with no network and no API key. The fake
answers every model call with one canned text reply and records each request, so a test can
check what the CLI sent (for instance, that a resumed session carried its earlier messages).

    with FakeAnthropic(reply="hi") as api:
        ...  # run claude with ANTHROPIC_BASE_URL=api.url
        assert api.messages()[-1]["messages"][0]["role"] == "user"

With ``isolate=True`` the server listens inside a fresh network namespace of its own (loopback
only), and ``api.netns`` names it so the CLI can be started in it with ``nsenter --net=...``:
the CLI then reaches the fake and nothing else. That needs root (CAP_SYS_ADMIN); without it
``api.netns`` is None and the server listens in the ordinary namespace.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CLONE_NEWNET = 0x40000000
SIOCSIFFLAGS = 0x8914
IFF_UP_LOOPBACK_RUNNING = 0x1 | 0x8 | 0x40


@dataclass
class Request:
    """One request as received: JSON body parsed (None when empty or not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received: float = field(default_factory=time.monotonic)


@dataclass
class FakeAnthropic:
    """The fake API; use as a context manager, or call start() and stop()."""

    reply: str = "canned reply"  # text of every model answer; may be changed between calls
    isolate: bool = False  # listen in a network namespace of its own (see module docstring)
    requests: list[Request] = field(default_factory=list)
    netns: str | None = None  # /proc path of the namespace when isolated, for nsenter --net
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def messages(self) -> list[dict[str, Any]]:
        """Bodies of the POST /v1/messages requests (model calls), oldest first."""
        return [
            r.body
            for r in list(self.requests)
            if r.method == "POST" and r.path.split("?")[0] == "/v1/messages"
        ]

    def start(self) -> FakeAnthropic:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            # The namespace belongs to this thread only; it lives as long as serve_forever.
            try:
                if self.isolate:
                    self.netns = _enter_new_netns()
                self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
                self._server.daemon_threads = True
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                return
            finally:
                ready.set()
            self._server.serve_forever(poll_interval=0.1)

        self._thread = threading.Thread(target=serve, name="fake-anthropic", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _enter_new_netns() -> str | None:
    """Move the calling thread into a new network namespace with loopback up.

    Returns the namespace's /proc path, or None (thread unchanged) without root or nsenter.
    """
    if shutil.which("nsenter") is None:  # nothing could join the namespace
        return None
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        # struct ifreq: 16-byte name, then the flags (padded to the kernel's 40 bytes).
        request = struct.pack("16sh22x", b"lo", IFF_UP_LOOPBACK_RUNNING)
        fcntl.ioctl(probe, SIOCSIFFLAGS, request)
    return f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events
    )


def _answer(reply: str, model: str, stream: bool) -> tuple[str, bytes]:
    """(content type, body) of a complete assistant message holding `reply`."""
    usage = {"input_tokens": 10, "output_tokens": max(1, len(reply.split()))}
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    if not stream:
        return "application/json", json.dumps(message).encode()
    started = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 0},
    }
    return "text/event-stream", _sse(
        [
            {"type": "message_start", "message": started},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": reply},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
            {"type": "message_stop"},
        ]
    )


def _handler(api: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length

        def _record(self) -> Any:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            api.requests.append(Request(self.command, self.path, dict(self.headers), body))
            return body

        def _send(self, content_type: str, data: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", "req_fake")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self._record()
            path = self.path.split("?")[0]
            if path == "/v1/messages" and isinstance(body, dict):
                stream = bool(body.get("stream"))
                self._send(*_answer(api.reply, str(body.get("model", "fake")), stream))
            elif path == "/v1/messages/count_tokens":
                self._send("application/json", b'{"input_tokens": 10}')
            else:
                self._send("application/json", b"{}")

        def do_GET(self) -> None:  # noqa: N802
            self._record()
            self._send("application/json", b'{"data": [], "has_more": false}')

        do_HEAD = do_GET  # noqa: N815
        do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the request list is the log; keep pytest's output clean

    return Handler
