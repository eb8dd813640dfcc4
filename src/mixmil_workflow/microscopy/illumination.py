"""Illumination correction per plate and channel (Singh et al. 2014), the recipe the reference describes
for BBBC021 (data_sources.md 2.3): the mean image of a plate's fields of view, smoothed with a wide
Gaussian, floored at a robust minimum and divided by it; images are divided by that function. Each
corrected image is then rescaled to its 0.1-99.9 percentiles and clipped to [0, 1]."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mixmil_workflow.microscopy.bbbc021 import CHANNELS, MicroscopyError

CHANNEL_OF_CODE = {"1": "DAPI", "2": "Tubulin", "4": "Actin"}
MEMBER_PATTERN = re.compile(r"_s\d+_w(\d)[^/]*\.tiff?$", re.IGNORECASE)


def read_tiff(archive: zipfile.ZipFile, member: str, where: str) -> np.ndarray:
    import tifffile

    try:
        data = archive.read(member)
    except KeyError:
        raise MicroscopyError(f"{where}: no file {member!r} in the plate zip (is the zip complete?)") from None
    try:
        return tifffile.imread(io.BytesIO(data)).astype(np.float32)
    except Exception as err:  # tifffile raises several types for a damaged file
        raise MicroscopyError(f"{where}: {member!r} is not a readable TIFF ({err}); download the plate again") from err


def plate_channel_members(zip_path: str | Path) -> dict[str, list[str]]:
    """Every TIFF of a plate zip by channel, from the channel code after the site (w1/w2/w4)."""
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    members: dict[str, list[str]] = {channel: [] for channel in CHANNELS}
    for name in names:
        match = MEMBER_PATTERN.search(name)
        if match and match.group(1) in CHANNEL_OF_CODE:
            members[CHANNEL_OF_CODE[match.group(1)]].append(name)
    empty = [c for c, m in members.items() if not m]
    if empty:
        raise MicroscopyError(f"plate zip {zip_path}: no TIFFs of channels {empty} (names like *_s1_w1<id>.tif)")
    # BBBC021 publishes no checksums: a complete plate has as many fields in every channel (720 TIFFs)
    counts = {c: len(m) for c, m in members.items()}
    if len(set(counts.values())) != 1:
        raise MicroscopyError(
            f"plate zip {zip_path}: channels have different numbers of TIFFs {counts}; the zip is incomplete, "
            "delete it and download it again"
        )
    return members


def illumination_functions(
    zip_path: str | Path, sigma: float, robust_percentile: float = 0.02
) -> dict[str, np.ndarray]:
    """One correction function per channel (float32, >= 1) from all fields of view of a plate zip."""
    from scipy.ndimage import gaussian_filter

    functions = {}
    with zipfile.ZipFile(zip_path) as archive:
        for channel, members in plate_channel_members(zip_path).items():
            total = None
            for member in tqdm(members, desc=f"{Path(zip_path).name} {channel}", mininterval=10):
                image = read_tiff(archive, member, str(zip_path))
                if total is not None and image.shape != total.shape:
                    raise MicroscopyError(f"plate zip {zip_path}: {member} is {image.shape}, others {total.shape}")
                total = image.astype(np.float64) if total is None else total + image
            smooth = gaussian_filter(total / len(members), sigma=sigma, mode="nearest")
            positive = smooth[smooth > 0]
            floor = np.percentile(positive, robust_percentile) if positive.size else 1.0
            functions[channel] = (np.maximum(smooth, floor) / floor).astype(np.float32)
    return functions


def correct(image: np.ndarray, function: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """Divide by the illumination function, rescale to the image's [low, high] percentiles, clip to [0, 1]."""
    flat = image / function
    lo, hi = np.percentile(flat, [low, high])
    return np.clip((flat - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


def save_functions(path: str | Path, functions: Mapping[str, np.ndarray]) -> None:
    from mixmil_workflow.io import save_npz

    save_npz(path, **{channel: functions[channel] for channel in CHANNELS})
