"""Cell embeddings: a timm ResNet50 with the SimCLR weights of Perakis et al. (2021), 2048-d features
after global average pooling (data_sources.md section 3).

The checkpoint is the reference's training checkpoint: ``{"state_dict": ...}`` of a ``ResNetSimCLR``
whose ``features`` is torchvision's ResNet50 without ``fc`` as an ``nn.Sequential`` (``features.0`` conv1,
``features.1`` bn1, ``features.4``-``features.7`` layer1-4), followed by the projection head ``l1``, ``l2``
(not used for embeddings). :func:`simclr_to_timm` maps those keys onto timm's ResNet50 names; any
backbone weight left unmapped, any key not understood and any shape mismatch is an error. Without a
checkpoint (the offline demo) the network is a deterministic, seeded random initialisation, and the
embedding metadata says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mixmil_workflow.microscopy.bbbc021 import MicroscopyError

# Normalisation of the SimCLR reference's feature extraction (Normalize on ToTensor() inputs).
SIMCLR_MEAN = (0.7469, 0.7403, 0.7307)
SIMCLR_STD = (0.1548, 0.1594, 0.1706)
# nn.Sequential(*list(resnet50.children())[:-1]) index -> torchvision/timm module name
SEQUENTIAL_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
PROJECTION_HEAD = ("l1.", "l2.")


def simclr_to_timm(state: Mapping[str, object], path: str | Path = "the checkpoint") -> dict[str, object]:
    """Backbone weights of a SimCLR checkpoint under timm's ResNet50 names (projection head dropped)."""
    mapped, unknown = {}, []
    for key, value in state.items():
        name = key.removeprefix("module.")  # saved from nn.DataParallel
        if name.startswith(PROJECTION_HEAD):
            continue
        parts = name.split(".")
        if parts[0] == "features" and len(parts) > 2 and parts[1] in SEQUENTIAL_NAMES:
            mapped[".".join([SEQUENTIAL_NAMES[parts[1]], *parts[2:]])] = value
        else:
            unknown.append(key)
    if unknown:
        raise MicroscopyError(
            f"{path}: {len(unknown)} keys are neither ResNet50 backbone (features.N...) nor projection head "
            f"(l1, l2), e.g. {unknown[:3]}; is this the SimCLR-for-cell-profiling ResNet50 checkpoint?"
        )
    return mapped


def build_encoder(checkpoint: str | Path | None, seed: int):
    """The ResNet50 feature extractor in eval mode; weights from ``checkpoint`` or a seeded random init."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model("resnet50", pretrained=False, num_classes=0)
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise MicroscopyError(f"SimCLR checkpoint {path} does not exist; set microscopy.checkpoint or download it")
        try:
            # the reference's checkpoints pickle optimiser and scheduler state next to the weights
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # torch raises several types for a file that is not a checkpoint
            raise MicroscopyError(
                f"SimCLR checkpoint {path} is not a torch checkpoint ({type(err).__name__}: {err}); if the "
                "download is an archive, unpack the .pth file and set microscopy.checkpoint to its path"
            ) from err
        state = saved.get("state_dict", saved) if isinstance(saved, Mapping) else None
        if not isinstance(state, Mapping):
            raise MicroscopyError(f"SimCLR checkpoint {path}: expected a dict with 'state_dict', got {type(saved)}")
        mapped = simclr_to_timm(state, path)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(mapped))
        unexpected = sorted(set(mapped) - set(expected))
        if missing or unexpected:
            raise MicroscopyError(
                f"SimCLR checkpoint {path}: {len(missing)} ResNet50 weights missing (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); the file is not a complete ResNet50 backbone"
            )
        wrong = [k for k, v in mapped.items() if tuple(v.shape) != tuple(expected[k].shape)]
        if wrong:
            raise MicroscopyError(f"SimCLR checkpoint {path}: shapes differ from ResNet50 for {wrong[:3]}")
        model.load_state_dict(mapped, strict=True)
    return model.eval()


def embed_crops(
    model,
    read_batch,
    n_crops: int,
    batch_size: int = 256,
    device: str = "cpu",
    mean: tuple[float, ...] = SIMCLR_MEAN,
    std: tuple[float, ...] = SIMCLR_STD,
    desc: str = "embedding",
) -> np.ndarray:
    """2048-d float32 embeddings of ``n_crops`` uint8 crops read by ``read_batch(start, stop)``."""
    import torch
    from tqdm.auto import tqdm

    model = model.to(device)
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    out = np.zeros((n_crops, model.num_features), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, n_crops, batch_size), desc=desc, mininterval=10):
            stop = min(start + batch_size, n_crops)
            x = torch.from_numpy(np.ascontiguousarray(read_batch(start, stop))).to(device).float().div_(255.0)
            out[start:stop] = model((x - m) / s).float().cpu().numpy()
    return out
