"""Checksummed, resumable, atomic downloads over HTTP(S).

A file is streamed to `<dest>.part` (resumed with an HTTP Range request when a previous attempt
left one), verified, then renamed onto `<dest>`: a partial download never looks complete. The
SHA-256 of every file is recorded in a JSON manifest after its first download and verified
whenever the file is reused.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from eeg2fmri.errors import InputError
from eeg2fmri.io import file_digest, sha256sum, write_json

CHUNK = 1 << 20


class DownloadError(InputError):
    """A download failed; the message names the URL (`status`: the HTTP status, if any)."""

    def __init__(self, path: str | Path | None, problem: str, status: int | None = None):
        super().__init__(path, problem)
        self.status = status


def recording_sha256(path: Path) -> str:
    """SHA-256 of a recording: its file's, or for a folder (EGI .mff) of each of its files'
    relative names and SHA-256s in order."""
    if not path.is_dir():
        return sha256sum(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{sha256sum(f)}\n".encode())
    return h.hexdigest()


def read_manifest(path: Path | None) -> dict[str, str]:
    """A JSON manifest {relative path: sha256}; empty when there is none yet."""
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise InputError(path, f"not a readable manifest ({e}); delete it") from None


def open_url(request: str | urllib.request.Request, timeout: float = 30.0
             ) -> http.client.HTTPResponse:
    """urllib's urlopen whose failures are one DownloadError line naming the URL."""
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as e:
        raise DownloadError(None, f"{url}: HTTP {e.code} {e.reason}", status=e.code) from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(None, f"{url}: host unreachable or not responding ({reason})") from None


def get_text(url: str, timeout: float = 30.0) -> str:
    """A small text resource (a listing)."""
    with open_url(url, timeout) as r:
        return r.read().decode()


@dataclass
class Trust:
    """What to do with a file its source publishes no checksum for: refuse it (`strict`), or
    take it as it comes, say so once, loudly, and list its URL (`unverified`) so that the
    manifest records it as trust-on-first-use."""

    strict: bool = False
    unverified: list[str] = field(default_factory=list)

    def check(self, url: str) -> None:
        """Before fetching a file that has no checksum: refuse it when strict."""
        if self.strict:
            raise DownloadError(None, f"{url}: the source publishes no checksum to verify it "
                                      "against; refused (config download_strict: true)")

    def record(self, url: str) -> None:
        """A file without a checksum was taken: say so once, and list it."""
        if url not in self.unverified:
            self.unverified.append(url)
            print(f"WARNING: {url}: no checksum published by the source; trusting this copy "
                  "(trust-on-first-use, recorded in the manifest; download_strict: true "
                  "refuses such files)", file=sys.stderr, flush=True)


def download(url: str, dest: str | Path, *, manifest: str | Path | None = None,
             sha256: str | None = None, size: int | None = None, md5: str | None = None,
             timeout: float = 30.0, progress: bool = True, trust: Trust | None = None) -> Path:
    """Fetch `url` to `dest` unless a verified copy is already there; returns `dest`.

    `size` and `md5` (e.g. from an S3 listing) are checked too; a file of the wrong size is
    fetched again, a transfer that ends early keeps its `.part` to resume from. A file with no
    checksum to check goes through `trust` (default: accepted with a warning)."""
    dest = Path(dest)
    if size is not None and dest.is_file() and dest.stat().st_size != size:
        dest.unlink()  # a stale or truncated copy: fetch it again
    manifest = Path(manifest) if manifest is not None else None
    known = read_manifest(manifest)
    key = dest.name if manifest is None else os.path.relpath(dest, manifest.parent)
    expected = sha256 or known.get(key)
    trust = trust or Trust()
    unchecked = sha256 is None and md5 is None
    if unchecked:
        trust.check(url)
    if dest.is_file():
        if expected is None or sha256sum(dest) == expected:
            if unchecked:
                trust.record(url)
            return dest
        raise DownloadError(dest, f"SHA-256 does not match the recorded {expected[:12]}…; "
                                  "delete the file to download it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = open_url(request, timeout)
    except DownloadError as e:
        if not (e.status == 416 and start):
            raise
        response = None  # range not satisfiable: the .part is already complete
    total: int | None = size
    if response is not None:
        with response:
            resumed = start > 0 and response.status == 206
            length = response.headers.get("Content-Length")
            if length and total is None:
                total = int(length) + (start if resumed else 0)
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                    total=total, initial=start if resumed else 0, unit="B", unit_scale=True,
                    desc=dest.name, disable=not progress, leave=False) as bar:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (http.client.IncompleteRead, ConnectionError, TimeoutError):
                        break  # the connection dropped: the size check below reports it
                    if not block:
                        break
                    f.write(block)
                    bar.update(len(block))
    got = part.stat().st_size
    if total is not None and got < total:
        raise DownloadError(None, f"{url}: transfer ended after {got} of {total} bytes; the "
                                  f"partial file {part} is kept, rerun to resume")
    if md5 is not None and file_digest(part, "md5") != md5:
        part.unlink()
        raise DownloadError(None, f"{url}: MD5 does not match the server's ({md5}); the "
                                  "partial file was removed, rerun to download again")
    digest = sha256sum(part)
    if expected is not None and digest != expected:
        part.unlink()
        raise DownloadError(None, f"{url}: SHA-256 {digest[:12]}… does not match the expected "
                                  f"{expected[:12]}…; the partial file was removed")
    os.replace(part, dest)
    if unchecked:
        trust.record(url)
    if manifest is not None and key not in known:
        write_json(manifest, {**read_manifest(manifest), key: digest})
    return dest
