"""Reading weight files without executing code, finding the state dict inside, and naming keys in messages.

Shared by the converters (:mod:`modeling_motionpatch.pretrained_towers`, :mod:`modeling_motionpatch.convert_original`).

Copied with the remote code of saved folders (through :mod:`modeling_motionpatch.pretrained_towers`), so it imports
only torch, transformers, safetensors and huggingface_hub.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import torch

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

#: state-dict wrappers unpacked when a checkpoint file holds more than the weights
CHECKPOINT_WRAPPER_KEYS = ("state_dict", "model", "module", "state_dict_ema", "model_ema")


def load_state_dict_file(path: str | os.PathLike, what: str = "checkpoint") -> dict[str, Any]:
    """Load a ``.safetensors`` file or a torch pickle **without executing code**.

    Pickles go through ``torch.load(..., map_location="cpu", weights_only=True)``, which only rebuilds tensors
    and plain containers; a pickle that needs to import or call anything else is refused with a `ValueError`
    and never executed.

    Args:
        path: a ``.safetensors``, ``.bin``, ``.pt`` or ``.pth`` file.
        what: how the file is named in error messages.

    Returns:
        The loaded object (a state dict, or a dict wrapping one).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} does not exist or is not a file.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise ValueError(f"Could not read {what} {path!r} as a torch checkpoint: {err}") from None
        raise ValueError(
            f"Refused to load {what} {path!r}: it is a pickle that needs to run code to be read (torch.load "
            f"with weights_only=True rejected it: {str(err).splitlines()[0]}). It was NOT executed. If you trust "
            "its origin, re-save only its tensors in an environment that has the code it needs, e.g. "
            "`torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pt')`, or convert it to "
            ".safetensors, and pass that file instead."
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as err:
        raise ValueError(
            f"Could not read {what} {path!r} as a torch checkpoint ({type(err).__name__}: {err}); expected a file "
            "written by torch.save or a .safetensors file."
        ) from None


def unwrap_state_dict(obj: Any, what: str = "checkpoint") -> StateDict:
    """Return the tensor state dict inside ``obj`` (a state dict, or a dict holding one under a usual key)."""
    if isinstance(obj, Mapping):
        for key in CHECKPOINT_WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        if tensors:
            return dict(tensors)
    keys = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(
        f"{what} holds no tensor state dict (found {keys}); expected a state dict or a dict with one of "
        f"{list(CHECKPOINT_WRAPPER_KEYS)}."
    )


def strip_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}



def preview_keys(keys: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` keys, comma-separated, and how many more there are (for error messages)."""
    keys = list(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


__all__ = ["CHECKPOINT_WRAPPER_KEYS", "StateDict", "load_state_dict_file", "preview_keys", "strip_prefix", "unwrap_state_dict"]
