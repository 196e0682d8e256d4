"""This process's own figures from /proc/self/status, for measurements run in a fresh interpreter
(getrusage's ru_maxrss would start at the parent's peak)."""

from __future__ import annotations

from pathlib import Path


def status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM, …) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)
