"""Downloads against a loopback HTTP server that honours Range requests."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from eeg2fmri.data.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802
        if self.path != "/data.bin":
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        body, status = PAYLOAD, 200
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(PAYLOAD):
                self.send_error(416)
                return
            body, status = PAYLOAD[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_records_the_checksum_and_reuses_the_file(server, tmp_path):
    manifest = tmp_path / "checksums.json"
    dest = download(f"{server}/data.bin", tmp_path / "raw" / "data.bin", manifest=manifest,
                    progress=False)
    assert dest.read_bytes() == PAYLOAD
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert json.loads(manifest.read_text()) == {"raw/data.bin": digest}
    download(f"{server}/data.bin", dest, manifest=manifest, progress=False)
    assert len(_Handler.requests) == 1  # verified and reused, not fetched again


def test_a_partial_download_resumes_with_a_range_request(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:300_000])
    download(f"{server}/data.bin", dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(),
             progress=False)
    assert _Handler.requests == ["bytes=300000-"]
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "data.bin.part").exists()


def test_a_corrupted_copy_is_named_and_not_used(server, tmp_path):
    manifest = tmp_path / "checksums.json"
    dest = download(f"{server}/data.bin", tmp_path / "data.bin", manifest=manifest,
                    progress=False)
    dest.write_bytes(b"tampered")
    with pytest.raises(DownloadError, match=r"data\.bin: SHA-256 does not match"):
        download(f"{server}/data.bin", dest, manifest=manifest, progress=False)


def test_a_wrong_checksum_never_lands(server, tmp_path):
    with pytest.raises(DownloadError, match="does not match the expected"):
        download(f"{server}/data.bin", tmp_path / "data.bin", sha256="0" * 64, progress=False)
    assert not any(tmp_path.iterdir())


def test_unreachable_host_and_missing_file_name_the_url(server, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    url = f"http://127.0.0.1:{port}/data.bin"
    with pytest.raises(DownloadError, match=rf"{url}: host unreachable"):
        download(url, tmp_path / "x.bin", timeout=2, progress=False)
    with pytest.raises(DownloadError, match=rf"{server}/nope.bin: HTTP 404"):
        download(f"{server}/nope.bin", tmp_path / "y.bin", progress=False)
    assert not list(Path(tmp_path).iterdir())
