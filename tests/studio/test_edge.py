"""The HTTP edge on a real server and real sockets: the token is checked before any body is read, JSON bodies are
capped, and an upload stops at the limit while it streams (chunked or not), its temporary file inside the data
directory and gone afterwards."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from studio.server import BackgroundServer, free_port, start_serve

ROOT = Path(__file__).resolve().parents[2]
MB = 2**20


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def send_request(port: int, head: str, chunks: Iterator[bytes], *, pause_s: float = 0.0) -> tuple[int, bytes, int]:
    """Send `head` then the body chunks until the server answers or stops reading; returns the status, the answer's
    body and how many body bytes the socket accepted."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    try:
        sock.sendall(head.encode("latin-1"))
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server answered before the body was sent
            try:
                sock.settimeout(2)
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break  # the server closed the connection or stopped reading
            sent += len(chunk)
            if pause_s:
                time.sleep(pause_s)
        sock.settimeout(30)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4 + _length(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12]), answer.split(b"\r\n\r\n", 1)[1], sent


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def chunked(total: int, size: int = 256 * 1024, prefix: bytes = b"") -> Iterator[bytes]:
    """A chunked transfer-encoding body of `prefix` then zero bytes, `total` bytes in all, then the end chunk."""
    if prefix:  # a zero-length chunk would end the body here
        yield b"%x\r\n%s\r\n" % (len(prefix), prefix)
    left = total - len(prefix)
    while left > 0:
        n = min(size, left)
        yield b"%x\r\n" % n + b"\0" * n + b"\r\n"
        left -= n
    yield b"0\r\n\r\n"


def plain(total: int, size: int = 1 * MB) -> Iterator[bytes]:
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


@pytest.fixture
def served_with_token(tmp_path):
    """`studio serve --local --token s3cret` in its own process, so its resident memory can be measured."""
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(port, tmp_path / "data", log, "--local", "--token", "s3cret", "--workers", "1", cwd=ROOT,
                          timeout_s=90)
    yield process, port
    process.terminate()
    process.wait(30)


def test_an_unauthenticated_200_mb_body_is_refused_without_being_read(served_with_token):
    process, port = served_with_token
    before = rss_bytes(process.pid)
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {200 * MB}\r\n\r\n")
    status, body, sent = send_request(port, head, plain(200 * MB))
    assert status == 401 and b"bearer token" in body
    head = "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n" \
           "Transfer-Encoding: chunked\r\n\r\n"
    status, _, sent_chunked = send_request(port, head, chunked(200 * MB))
    assert status == 401
    grown = rss_bytes(process.pid) - before
    assert grown < 40 * MB, f"the server's memory grew by {grown / MB:.0f} MB"
    assert sent < 50 * MB and sent_chunked < 50 * MB, (sent, sent_chunked)  # it stopped reading
    ok = httpx.get(f"http://127.0.0.1:{port}/v1/jobs", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


@pytest.fixture
def small_limits(make_service):
    service = make_service(max_upload_bytes=1 * MB, max_body_bytes=64 * 1024)
    with BackgroundServer(service) as server:
        server.service = service
        yield server


def test_json_bodies_past_the_cap_are_413_declared_or_chunked(small_limits):
    port = small_limits.port
    big = b'{"kind": "t2i", "params": {"prompt": "' + b"a" * 100_000 + b'"}}'
    declared = httpx.post(f"{small_limits.url}/v1/jobs", content=big, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and "limit" in declared.json()["error"]["message"]
    head = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, body, sent = send_request(port, head, chunked(30 * MB, prefix=b'{"kind": "t2i", "params": {"prompt": "'))
    assert status == 413 and b"limit" in body and sent < 20 * MB
    small = httpx.post(f"{small_limits.url}/v1/jobs", json={"kind": "t2i", "params": {"prompt": "a" * 1000, "steps": 1}})
    assert small.status_code == 202


def multipart_head(boundary: str = "XyZ") -> tuple[str, bytes, bytes]:
    head = (f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    opening = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
               "Content-Type: video/mp4\r\n\r\n").encode()
    return head, opening, f"\r\n--{boundary}--\r\n".encode()


def test_a_chunked_upload_past_the_limit_stops_at_the_limit_and_leaves_no_temporary_file(small_limits):
    service = small_limits.service
    head, opening, _ = multipart_head()
    status, body, sent = send_request(small_limits.port, head, chunked(30 * MB, prefix=opening))
    assert status == 413 and b"limit" in body
    assert sent < 20 * MB, f"the server read {sent} bytes of a 30 MB upload with a 1 MB limit"
    time.sleep(0.2)
    assert list(service.tmp_dir.iterdir()) == []


def test_an_upload_streams_to_the_data_directory_and_an_aborted_one_is_removed(small_limits, media):
    service = small_limits.service
    head, opening, closing = multipart_head()
    sock = socket.create_connection(("127.0.0.1", small_limits.port), timeout=10)
    sock.sendall(head.encode() + next(chunked(0, prefix=opening + b"\0" * 300_000)))
    deadline = time.monotonic() + 10
    while not list(service.tmp_dir.glob("upload-*.part")):
        assert time.monotonic() < deadline, "the upload did not stream to <data-dir>/tmp"
        time.sleep(0.05)
    sock.close()  # the client goes away in the middle
    deadline = time.monotonic() + 10
    while list(service.tmp_dir.iterdir()):
        assert time.monotonic() < deadline, list(service.tmp_dir.iterdir())
        time.sleep(0.05)
    video = media["video"].read_bytes()
    whole = httpx.post(f"{small_limits.url}/v1/uploads", files={"file": ("clip.mp4", video)}, data={"kind": "video"})
    assert whole.status_code == 201 and whole.json()["size"] == len(video)
    assert list(service.tmp_dir.iterdir()) == []


def test_a_base64_data_url_of_the_upload_limit_fits_the_default_body_cap(make_service):
    import base64

    service = make_service(max_upload_bytes=1 * MB)
    data_url = "data:video/mp4;base64," + base64.b64encode(b"\0" * MB).decode()
    with BackgroundServer(service) as server:
        inline = httpx.post(f"{server.url}/v1/jobs", json={"kind": "caption", "params": {"video": data_url}})
        assert inline.status_code == 422  # read and judged by the kind, not refused by the cap
        twice = httpx.post(f"{server.url}/v1/jobs", json={"kind": "caption", "params": {"video": data_url * 2}})
        assert twice.status_code == 413
