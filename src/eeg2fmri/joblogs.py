"""The failing jobs' own error lines, for the terminal: Snakemake says only "check log file(s)
for error details", and the one line that names the file and the problem sits in the job's log.
The Snakefile's `onerror` prints them."""

from __future__ import annotations

import re
from pathlib import Path


def failed_job_logs(snakemake_log: str) -> list[tuple[str, Path]]:
    """(rule, job log) of every failed job in a Snakemake run's log text."""
    out = []
    for block in re.split(r"\n(?=Error in rule )", snakemake_log):
        rule = re.match(r"Error in rule (\S+):", block)
        logs = re.search(r"^\s+log: (.+?) \(check log file", block, flags=re.MULTILINE)
        if rule and logs:
            out += [(rule[1].rstrip(":"), Path(p.strip())) for p in logs[1].split(",")]
    return list(dict.fromkeys(out))


def error_lines(log: Path, tail: int = 3) -> list[str]:
    """A job log's `eeg2fmri ...: error:` lines, else its last lines."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return [f"(no log at {log})"]
    errors = [ln for ln in lines if re.match(r"eeg2fmri \w+: error:", ln)]
    return errors or lines[-tail:]


def report(snakemake_logs: str | Path | list[str | Path]) -> str:
    """What the terminal shows after a failed run: each failed job's rule, log and error, from
    Snakemake's log (Snakemake 9 gives `onerror` a list of them)."""
    paths = snakemake_logs if isinstance(snakemake_logs, list | tuple) else [snakemake_logs]
    text = ""
    for path in paths:
        try:
            text += Path(path).read_text(errors="replace")
        except OSError:
            pass
    parts = []
    for rule, log in failed_job_logs(text):
        parts.append(f"rule {rule} failed (log: {log}):\n" +
                     "\n".join(f"  {line}" for line in error_lines(log)))
    return "\n".join(parts)
