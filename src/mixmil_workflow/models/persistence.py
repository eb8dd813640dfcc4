"""The one save/load format of every model: a torch file holding a dict with the model's format tag,
its hyperparameters and its fitted state, written atomically.

Tensors, numbers, strings, lists and dicts load with ``weights_only=True`` (no code runs on load); NumPy
arrays are stored as tensors. Only the tree ensembles hold Python objects (scikit-learn / XGBoost
estimators, which have no safer portable form here): those files load with ``trusted=True``, so load
only tree models this workflow wrote.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixmil_workflow.io import atomic_path


def _tensors(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    if isinstance(value, dict):
        return {k: _tensors(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_tensors(v) for v in value)
    return value


def save_model(path: str | Path, format: str, config, **state: Any) -> None:
    """Write ``{"format", "config" (the dataclass as a dict), **state}``; NumPy arrays become tensors and
    tensors move to the CPU."""
    payload = {"format": format, "config": asdict(config), **_tensors(state)}
    # Through a file object: given a path, torch names the archive's root folder after the file, here the
    # atomic write's random temporary name, so identical models would not give identical bytes.
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def load_model(path: str | Path, format: str, what: str, *, trusted: bool = False) -> dict[str, Any]:
    """The payload :func:`save_model` wrote, after checking its format tag (``what`` names the model in
    the error). ``trusted``: the file holds Python objects (tree ensembles) and may run code on load."""
    payload = torch.load(path, map_location="cpu", weights_only=not trusted)
    if not isinstance(payload, dict) or payload.get("format") != format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is not a saved {what} model (format {found!r})")
    return payload


def load(path: str | Path, *, trusted: bool = False):
    """Any model this package saved, as its class (read from the file's format tag), ready to predict.

    ``trusted=True`` is needed for tree models (their files hold scikit-learn / XGBoost objects, and
    loading those can run code): pass it only for files this workflow wrote."""
    from mixmil_workflow import models
    from mixmil_workflow.models.base import MILModel

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not trusted:
            raise ValueError(
                f"{path} holds Python objects (a tree model's estimators); load it with trusted=True, and only "
                "if this workflow wrote it"
            ) from err
        payload = torch.load(path, map_location="cpu", weights_only=False)
    tag = payload.get("format") if isinstance(payload, dict) else None
    name = tag.partition("/")[0].removeprefix("mixmil_workflow.") if isinstance(tag, str) else ""
    cls = getattr(models, name, None) if isinstance(tag, str) and tag.startswith("mixmil_workflow.") else None
    if not (isinstance(cls, type) and issubclass(cls, MILModel)):
        raise ValueError(f"{path} is not a model saved by mixmil_workflow (format tag {tag!r})")
    return cls.load(path)


def as_array(value) -> np.ndarray | None:
    """A stored tensor back as a NumPy array (None stays None)."""
    return None if value is None else value.numpy()


def state_dict_cpu(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
