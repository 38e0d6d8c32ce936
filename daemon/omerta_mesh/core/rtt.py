"""Smoothed round-trip time and its variation (RFC 6298): shared by the reliable stream and path probes."""

from __future__ import annotations


def smooth(srtt: float | None, rttvar: float, sample: float) -> tuple[float, float]:
    """The new (srtt, rttvar) after one sample."""
    if srtt is None:
        return sample, sample / 2
    return 0.875 * srtt + 0.125 * sample, 0.75 * rttvar + 0.25 * abs(srtt - sample)
