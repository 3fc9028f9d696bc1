"""Inference with an ONNX export of a MotionPatch model (onnxruntime), with the eager model's API.

:class:`MotionPatchOnnxModel` loads a folder written by ``motionpatch-export`` (see :mod:`.onnx_export`):
``motion_encoder.onnx``, ``text_encoder.onnx``, ``onnx_config.json``, the model's ``config.json`` and the processor
files. ``get_motion_features`` / ``get_text_features`` return a ``BaseModelOutputWithPooling`` whose
``pooler_output`` is the projected (not normalised) embedding, and calling the model gives a
:class:`~.modeling_motionpatch.MotionPatchOutput` with the same logits and normalised embeddings as
:class:`~.modeling_motionpatch.MotionPatchModel`.

``onnxruntime`` is imported only when a model is loaded (``pip install "motionpatch[onnx]"``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ..modeling_motionpatch import (
    MotionPatchOutput,
    paired_contrastive_loss,
    similarity_logits,
)

__all__ = ["MOTION_ENCODER_FILE", "ONNX_CONFIG_FILE", "TEXT_ENCODER_FILE", "MotionPatchOnnxModel", "projected_features"]

ONNX_CONFIG_FILE = "onnx_config.json"
MOTION_ENCODER_FILE = "motion_encoder.onnx"
TEXT_ENCODER_FILE = "text_encoder.onnx"
ONNX_FORMAT = "motionpatch-onnx"
ONNX_FORMAT_VERSION = 1

# inputs a graph may lack although the processor emits them; the eager model ignores them in that case too
_FILL_VALUES = {"attention_mask": 1, "motion_attention_mask": 1, "token_type_ids": 0}


def projected_features(model: Any, kind: str, **inputs: Any) -> torch.Tensor:
    """The projected, not normalised ``(batch, projection_dim)`` embedding of ``model.get_{kind}_features``.

    Works with a ``get_*_features`` that returns a model output (``pooler_output``) and with one that returns
    the tensor itself (then ``normalize=False`` is passed when the method accepts it).
    """
    import inspect

    method = getattr(model, f"get_{kind}_features")
    if "normalize" in inspect.signature(method).parameters:
        inputs["normalize"] = False
    out = method(**inputs)
    return out.pooler_output if hasattr(out, "pooler_output") else out


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(
            "MotionPatchOnnxModel needs onnxruntime: install it with `pip install \"motionpatch[onnx]\"` (or "
            "`pip install onnxruntime`, `onnxruntime-gpu` for CUDA)."
        ) from err
    return onnxruntime


class MotionPatchOnnxModel:
    """Both towers of an exported MotionPatch model, run by onnxruntime.

    Args:
        motion_session, text_session: ``onnxruntime.InferenceSession`` of ``motion_encoder.onnx`` and
            ``text_encoder.onnx``.
        config: the model's ``MotionPatchConfig``.
        export_config: the contents of ``onnx_config.json`` (``logit_scale``, input names, quantisation).

    Use :meth:`from_pretrained` to load an exported folder::

        >>> model = MotionPatchOnnxModel.from_pretrained("exported/")
        >>> processor = AutoProcessor.from_pretrained("exported/")
        >>> out = model(**processor(text=["a person walks"], motions=[joints], return_tensors="pt"))
        >>> out.logits_per_motion.softmax(-1)
    """

    training = False  # like a model in eval mode (MotionSearchIndex.from_model checks this)

    def __init__(self, motion_session: Any, text_session: Any, config: Any, export_config: dict[str, Any]):
        self.motion_session = motion_session
        self.text_session = text_session
        self.config = config
        self.export_config = dict(export_config)
        self.logit_scale = torch.tensor(float(export_config["logit_scale"]))
        self._inputs = {
            "motion": {i.name: i.type for i in motion_session.get_inputs()},
            "text": {i.name: i.type for i in text_session.get_inputs()},
        }
        self._ignored = set(export_config.get("ignored_inputs", []))

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        providers: list[Any] | None = None,
        session_options: Any = None,
        num_threads: int | None = None,
    ) -> MotionPatchOnnxModel:
        """Load a folder written by ``motionpatch-export``.

        Args:
            path: the export folder.
            providers: onnxruntime execution providers (default: ``["CPUExecutionProvider"]``; e.g.
                ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` with ``onnxruntime-gpu``).
            session_options: an ``onnxruntime.SessionOptions`` used for both sessions.
            num_threads: intra-op threads of each session (onnxruntime's default: all cores).
        """
        from transformers import AutoConfig

        from .. import MotionPatchConfig  # noqa: F401  (registers the config classes with AutoConfig)

        ort = _import_onnxruntime()
        directory = Path(path)
        files = [directory / f for f in (ONNX_CONFIG_FILE, MOTION_ENCODER_FILE, TEXT_ENCODER_FILE, "config.json")]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ValueError(
                f"{str(directory)!r} is not a MotionPatch ONNX export: {', '.join(missing)} missing. Write one with "
                "`motionpatch-export --model MODEL_DIR --output DIR`."
            )
        export_config = json.loads(files[0].read_text(encoding="utf-8"))
        if export_config.get("format") != ONNX_FORMAT:
            raise ValueError(f"{str(files[0])!r} has format {export_config.get('format')!r}, expected {ONNX_FORMAT!r}.")
        if int(export_config.get("version", 0)) > ONNX_FORMAT_VERSION:
            raise ValueError(
                f"{str(files[0])!r} has version {export_config['version']}, newer than this library supports "
                f"({ONNX_FORMAT_VERSION}); upgrade motionpatch."
            )
        if session_options is None:
            session_options = ort.SessionOptions()
        if num_threads is not None:
            session_options.intra_op_num_threads = int(num_threads)
            session_options.inter_op_num_threads = 1
        providers = providers or ["CPUExecutionProvider"]
        sessions = [
            ort.InferenceSession(str(f), sess_options=session_options, providers=providers) for f in files[1:3]
        ]
        return cls(sessions[0], sessions[1], AutoConfig.from_pretrained(directory), export_config)

    # ----------------------------------------------------------------- towers
    def eval(self) -> MotionPatchOnnxModel:
        return self

    def _run(self, kind: str, **inputs: Any) -> torch.Tensor:
        session = self.motion_session if kind == "motion" else self.text_session
        expected = self._inputs[kind]
        unknown = [k for k, v in inputs.items() if v is not None and k not in expected and k not in self._ignored]
        if unknown:
            raise ValueError(
                f"the exported {kind} encoder takes {sorted(expected)}, got unsupported inputs {sorted(unknown)}; "
                "re-export the model if it needs them."
            )
        main = "motion_values" if kind == "motion" else "input_ids"
        if inputs.get(main) is None:
            raise ValueError(f"get_{kind}_features needs `{main}`.")
        reference = np.asarray(inputs[main].detach().cpu() if isinstance(inputs[main], torch.Tensor) else inputs[main])
        feed = {}
        for name, type_name in expected.items():
            value = inputs.get(name)
            if value is None:
                if name not in _FILL_VALUES:
                    raise ValueError(f"the exported {kind} encoder needs `{name}`.")
                shape = reference.shape[:2] if name != "motion_attention_mask" else None
                if shape is None:  # (batch[, persons], patches): the graph's own trailing size
                    trailing = next(i.shape for i in session.get_inputs() if i.name == name)[-1]
                    shape = (*reference.shape[: reference.ndim - 3], trailing)
                value = np.full(shape, _FILL_VALUES[name])
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            dtype = np.float32 if "float" in type_name else np.int64
            feed[name] = np.ascontiguousarray(value, dtype=dtype)
        (out,) = session.run(None, feed)
        return torch.from_numpy(out)

    def get_motion_features(
        self, motion_values: Any, motion_attention_mask: Any = None, motion_lengths: Any = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """``pooler_output``: projected motion embeddings ``(batch, projection_dim)`` (not normalised).

        ``motion_lengths`` (returned by the processor) is accepted and ignored, as in the eager model.
        """
        return BaseModelOutputWithPooling(
            pooler_output=self._run(
                "motion", motion_values=motion_values, motion_attention_mask=motion_attention_mask, **kwargs
            )
        )

    def get_text_features(
        self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None, **kwargs: Any
    ) -> BaseModelOutputWithPooling:
        """``pooler_output``: projected text embeddings ``(batch, projection_dim)`` (not normalised)."""
        return BaseModelOutputWithPooling(
            pooler_output=self._run(
                "text", input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, **kwargs
            )
        )

    def __call__(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        motion_values: Any = None,
        motion_attention_mask: Any = None,
        motion_lengths: Any = None,
        token_type_ids: Any = None,
        return_loss: bool = False,
        **kwargs: Any,
    ) -> MotionPatchOutput:
        """Like ``MotionPatchModel.forward``: logits, normalised embeddings and (``return_loss``) the loss."""
        if input_ids is None or motion_values is None:
            raise ValueError(
                "MotionPatchOnnxModel needs both `input_ids` and `motion_values`; use `get_text_features` or "
                "`get_motion_features` to encode one modality."
            )
        motion_embeds = F.normalize(self.get_motion_features(motion_values, motion_attention_mask).pooler_output, dim=-1)
        text_embeds = F.normalize(
            self.get_text_features(input_ids, attention_mask, token_type_ids, **kwargs).pooler_output, dim=-1
        )
        logits_per_text = similarity_logits(text_embeds, motion_embeds, self.logit_scale)
        loss = None
        if return_loss:
            loss = paired_contrastive_loss(logits_per_text)
        return MotionPatchOutput(
            loss=loss,
            logits_per_motion=logits_per_text.t(),
            logits_per_text=logits_per_text,
            motion_embeds=motion_embeds,
            text_embeds=text_embeds,
        )

    forward = __call__
