"""BrainVision (.vhdr header, .eeg/.dat data, .vmrk markers), read by MNE after checking the
header against its data file; headers whose DataFile=/MarkerFile= lines still name the
acquisition files (NODDI exports, CN-EPFL) are repaired in a temporary copy."""

from __future__ import annotations

import configparser
import re
import shutil
import sys
import tempfile
from pathlib import Path

import mne

from eeg2fmri.data.formats import ReadOptions, base
from eeg2fmri.errors import InputError

COMPANIONS = (("DataFile", (".eeg", ".dat")), ("MarkerFile", (".vmrk",)))
BYTES = {"INT_16": 2, "UINT_16": 2, "INT_32": 4, "IEEE_FLOAT_32": 4}


class Reader(base.Reader):
    def companions(self, path: Path) -> list[Path]:
        if not path.is_file():  # not written yet (a workflow output): the usual names
            return [path.with_suffix(".eeg"), path.with_suffix(".vmrk")]
        common = common_infos(path)
        return [companion(path, common, key, exts)[0] for key, exts in COMPANIONS]

    def check(self, path: Path) -> None:
        check(path, common_infos(path))

    def _open(self, path: Path, options: ReadOptions) -> mne.io.BaseRaw:
        repaired, fixes = repaired_header(path, common_infos(path))
        for fix in fixes:
            print(f"{path}: repaired header line {fix}", file=sys.stderr)
        try:  # MNE keeps the data file's path: the temporary header is not needed afterwards
            return base.mne_call(mne.io.read_raw_brainvision, repaired or path, self.name)
        finally:
            if repaired is not None:
                shutil.rmtree(repaired.parent, ignore_errors=True)


def common_infos(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    body = text.split("\n", 1)[1] if "\n" in text else ""  # skip the "Brain Vision ..." title
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(body)
    except configparser.Error as e:
        raise InputError(path, f"not a readable BrainVision header ({e})") from None
    if "Common Infos" not in parser:
        raise InputError(path, "not a BrainVision header: no [Common Infos] section")
    return dict(parser["Common Infos"])


HISTORY = re.compile(r"^;\s*Data created from history path:\s*(.+?)\s*$", re.MULTILINE)


def history(path: Path) -> list[str]:
    """The BrainVision Analyzer steps that made an export, first step first, from the "Data
    created from history path: A/B/C" comment of its header or marker file; [] for a recording
    as the amplifier wrote it."""
    files = [path]
    try:
        files.append(companion(path, common_infos(path), "MarkerFile", (".vmrk",))[0])
    except InputError:
        pass
    for f in files:
        found = HISTORY.search(f.read_text(encoding="utf-8", errors="replace"))
        if found:
            return [step.strip() for step in found.group(1).split("/") if step.strip()]
    return []


def companion(path: Path, common: dict[str, str], key: str, exts: tuple[str, ...]
              ) -> tuple[Path, bool]:
    """The file a header's DataFile=/MarkerFile= line should name, and whether it names it.

    Some public headers (NODDI exports, CN-EPFL) still name the acquisition files after the data
    were renamed; then the file with the header's stem and the right extension is used."""
    name = common.get(key)
    if not name:
        raise InputError(path, f"header has no {key}= line")
    if (path.parent / name).is_file():
        return path.parent / name, True
    for e in exts:
        if path.with_suffix(e).is_file():
            return path.with_suffix(e), False
    raise InputError(path, f"{key}={name} names a file that does not exist in {path.parent}, "
                           f"and there is no {' or '.join(path.stem + e for e in exts)} beside it")


def repaired_header(path: Path, common: dict[str, str]) -> tuple[Path | None, list[str]]:
    """A temporary copy of the header whose DataFile=/MarkerFile= lines name files that exist;
    (None, []) when the header is fine."""
    raw = path.read_bytes()  # bytes: the header's own code page is kept
    fixes = []
    for key, exts in COMPANIONS:
        target, ok = companion(path, common, key, exts)
        if not ok:
            line = f"{key}={target.resolve()}".encode()
            raw = re.sub(rb"^" + key.encode() + rb"=[^\r\n]*", lambda _m, b=line: b, raw,
                         count=1, flags=re.MULTILINE)
            fixes.append(f"{key}={common[key]} -> {target.name}")
    if not fixes:
        return None, []
    tmp = Path(tempfile.mkdtemp(prefix="vhdr-")) / path.name
    tmp.write_bytes(raw)
    return tmp, fixes


def check(path: Path, common: dict[str, str]) -> None:
    """The header agrees with itself and with its data file: channel count against the
    [Channel Infos] lines, a positive sampling interval, data file size against channels x bytes
    per sample (and DataPoints= where the header states it), markers within the data."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        n_ch = int(common.get("NumberOfChannels", ""))
    except ValueError:
        raise InputError(path, "header has no valid NumberOfChannels= line") from None
    if n_ch < 1:
        raise InputError(path, f"header says NumberOfChannels={n_ch}: a recording needs at "
                               "least one channel")
    try:
        interval = float(common.get("SamplingInterval", ""))
    except ValueError:
        raise InputError(path, "header has no valid SamplingInterval= line (microseconds per "
                               "sample)") from None
    if not 0 < interval < float("inf"):
        raise InputError(path, f"header says SamplingInterval={common['SamplingInterval']}: "
                               "microseconds per sample must be positive")
    section = re.search(r"^\[Channel Infos\][^\n]*\n(.*?)(?=^\[|\Z)", text,
                        flags=re.MULTILINE | re.DOTALL)
    listed = len(re.findall(r"^Ch\d+=", section[1] if section else "", flags=re.MULTILINE))
    if listed != n_ch:
        raise InputError(path, f"header says NumberOfChannels={n_ch} but its [Channel Infos] "
                               f"section lists {listed} channels")
    fmt = re.search(r"^BinaryFormat=(\S+)", text, flags=re.MULTILINE)
    if (common.get("DataFormat", "BINARY").upper() != "BINARY" or fmt is None
            or fmt[1].upper() not in BYTES):
        return  # ASCII data or an unusual format: MNE checks what it can
    data_file, _ = companion(path, common, "DataFile", (".eeg", ".dat"))
    frame = n_ch * BYTES[fmt[1].upper()]
    size = data_file.stat().st_size
    if size % frame:
        raise InputError(data_file, f"is {size:,} bytes, not a whole number of samples of "
                                    f"{n_ch} channels x {frame // n_ch} bytes (header "
                                    f"{path.name}): the file is truncated or the header wrong")
    n_samples = size // frame
    points = common.get("DataPoints")
    if points and points.strip().isdigit() and int(points) != n_samples:
        raise InputError(data_file, f"holds {n_samples:,} samples ({size:,} bytes) but "
                                    f"header {path.name} says DataPoints={int(points):,}: the "
                                    f"file is truncated or the header wrong")
    marker_file, _ = companion(path, common, "MarkerFile", (".vmrk",))
    marks = re.findall(r"^(Mk\d+)=[^,\n]*,[^,\n]*,\s*(-?\d+)",
                       marker_file.read_text("utf-8", errors="replace"), flags=re.MULTILINE)
    before = [(name, int(p)) for name, p in marks if int(p) < 1]
    if before:
        raise InputError(marker_file, f"{len(before)} marker(s) lie before the recording's first "
                                      f"sample (the first: {before[0][0]} at position "
                                      f"{before[0][1]}; positions count from 1): the marker "
                                      "file is damaged or belongs to another recording")
    past = [int(p) for _, p in marks if int(p) - 1 >= n_samples]  # positions count from 1
    if past:
        raise InputError(data_file, f"holds {n_samples:,} samples ({size:,} bytes) but "
                                    f"{len(past)} of {len(marks)} markers in "
                                    f"{marker_file.name} lie past its end (last at sample "
                                    f"{max(past) - 1:,}): the data file is truncated or "
                                    "belongs to another recording")
