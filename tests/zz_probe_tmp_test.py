import time, socket
from pathlib import Path
from conftest import joined, PASSPHRASE
from servers import free_port

def test_probe(server, make_device):
    a = make_device("a")
    t = time.monotonic()
    r = a.run("init", *server.provider_args, "--device-name", "a", "--yes")
    print(server.kind, "init", time.monotonic() - t, r.output)
    print(sorted(str(p.relative_to(server.data_dir)) for p in server.data_dir.rglob("*")))
    print((a.sync_home / "rclone.conf").read_text())
    t = time.monotonic()
    r = a.run("doctor"); print("doctor", time.monotonic()-t, r.exit_code, r.output)
    server.stop()
    t = time.monotonic()
    r = a.run("doctor"); print("doctor stopped", time.monotonic()-t, r.exit_code, r.output)

def test_unreach(make_device):
    a = make_device("a")
    port = free_port()
    t = time.monotonic()
    r = a.run("init", "--provider", "s3", "--set", "provider=Other", "--set", f"endpoint=http://127.0.0.1:{port}", "--set", "access_key_id=a", "--set", "secret_access_key=b", "--set", "bucket=bucket", "--yes")
    print("unreach", time.monotonic()-t, r.exit_code, repr(r.output))
