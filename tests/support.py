"""Helpers shared by the attribution tests (imported as ``support``)."""

from __future__ import annotations

from ember import Profile


def share_in(profile: Profile, function: str, endpoint: str) -> tuple[float, int]:
    """The share of ``function``'s samples that carry ``endpoint``, and their number."""
    total = inside = 0
    for stack, labels, values in profile.samples():
        if any(f.name == function for f in stack):
            total += values.samples
            inside += values.samples if ("endpoint", endpoint) in labels else 0
    assert total > 0, f"no samples of {function}"
    return inside / total, total
