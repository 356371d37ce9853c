"""Helpers shared by the attribution tests (imported as ``support``)."""

from __future__ import annotations

import subprocess

from ember import Profile


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Terminate a server the test started (kill it if it lingers); close its output."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout:
        process.stdout.close()


def share_in(profile: Profile, function: str, endpoint: str) -> tuple[float, int]:
    """The share of ``function``'s samples that carry ``endpoint``, and their number."""
    total = inside = 0
    for stack, labels, values in profile.samples():
        if any(f.name == function for f in stack):
            total += values.samples
            inside += values.samples if ("endpoint", endpoint) in labels else 0
    assert total > 0, f"no samples of {function}"
    return inside / total, total
