"""Donor identifiers across the OneK1K sources."""

from __future__ import annotations


def vcf_sample_of(donor_id: str) -> str:
    """CELLxGENE ``donor_id`` -> VCF sample: ``691_692`` -> ``OneK1K_692`` (the join used by the Theis
    lab's cellink for the Zenodo 7619796 VCF, data_sources.md section 1.3)."""
    parts = str(donor_id).split("_")
    if len(parts) != 2 or not parts[1].isdigit():
        raise ValueError(f"donor_id {donor_id!r} is not of the OneK1K form '<n>_<m>' (e.g. '691_692')")
    return f"OneK1K_{parts[1]}"
