"""Export both towers of a MotionPatch model to ONNX, optionally with int8 dynamic quantisation.

``motionpatch-export --model MODEL_DIR --output DIR [--quantize int8]`` writes ``motion_encoder.onnx`` (inputs
``motion_values`` and, when ``config.mask_motion_padding`` is set, ``motion_attention_mask``; dynamic batch) and
``text_encoder.onnx`` (``input_ids``, ``attention_mask`` and ``token_type_ids`` when the tokenizer emits them and
the text tower reads them; dynamic batch and length). Each graph has one output, ``pooler_output``: the projected,
not normalised embedding. The folder also holds the model's ``config.json``, the processor files and
``onnx_config.json`` (logit scale, input names, exporter, quantisation, export-time parity figures), so that
:class:`~.modeling_onnx.MotionPatchOnnxModel` and ``AutoProcessor`` load it.

Graphs come from ``torch.onnx.export`` (the ``torch.export``-based "dynamo" exporter by default) and int8 weights
from ``onnxruntime.quantization.quantize_dynamic``. ``onnx``/``onnxruntime`` are imported only here
(``pip install "motionpatch[onnx]"``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .modeling_onnx import (
    MOTION_ENCODER_FILE,
    ONNX_CONFIG_FILE,
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    TEXT_ENCODER_FILE,
    MotionPatchOnnxModel,
    projected_features,
)

__all__ = ["export_onnx", "main", "quantize_onnx"]

EXPORTERS = ("dynamo", "torchscript")
QUANTIZATIONS = ("int8",)
# Op types whose weights ``--quantize int8`` stores as int8: the linear layers and the token embedding. ``Conv`` (the
# patch embedding) stays fp32: onnxruntime's CPU ``ConvInteger`` is slower than the fp32 convolution (quantize_onnx).
INT8_OP_TYPES = ("MatMul", "Gather")
_EXAMPLE_TEXTS = ["a person walks forward and turns around", "someone jumps"]


class _MotionTower(nn.Module):
    """The motion tower with the graph's inputs as arguments; returns ``pooler_output``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, motion_values: torch.Tensor, motion_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return projected_features(
            self.model, "motion", motion_values=motion_values, motion_attention_mask=motion_attention_mask
        )


class _TextTower(nn.Module):
    """The text tower with the graph's inputs as arguments; returns ``pooler_output``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return projected_features(self.model, "text", input_ids=input_ids, attention_mask=attention_mask, **extra)


def _accepts(module: nn.Module, name: str) -> bool:
    params = inspect.signature(module.forward).parameters
    return name in params


def _example_inputs(model: Any, processor: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """Processor outputs for two motions and two captions, the input names of each graph, and ignored names."""
    fe = processor.feature_extractor
    rng = np.random.default_rng(0)
    persons = int(getattr(fe, "num_persons", 1))
    joints = [rng.normal(size=(n, fe.num_joints, 3)).astype(np.float32) for n in (fe.max_frames, fe.max_frames // 3)]
    motions = joints if persons == 1 else [[j] * persons for j in joints]
    motion = processor(motions=motions, return_tensors="pt", check_skeleton=False)  # random arrays: tracing inputs
    text = processor(text=_EXAMPLE_TEXTS, return_tensors="pt", padding=True)
    ignored = ["motion_lengths"]
    motion_names = ["motion_values"]
    if model.config.mask_motion_padding:
        motion_names.append("motion_attention_mask")
    else:
        ignored.append("motion_attention_mask")
    text_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in text:
        if _accepts(model.text_model, "token_type_ids"):
            text_names.append("token_type_ids")
        else:
            ignored.append("token_type_ids")
    return {k: motion[k] for k in motion_names}, {k: text[k] for k in text_names}, ignored


def _export_graph(
    tower: nn.Module, inputs: dict[str, torch.Tensor], path: Path, exporter: str, opset: int | None, dynamic: dict
) -> None:
    names = list(inputs)
    common = dict(input_names=names, output_names=["pooler_output"], opset_version=opset)
    if exporter == "dynamo":
        dims = {"batch": torch.export.Dim("batch"), "sequence": torch.export.Dim("sequence")}
        shapes = {k: {axis: dims[name] for axis, name in dynamic[k].items()} for k in names}
        torch.onnx.export(
            tower, (), str(path), kwargs=inputs, dynamo=True, external_data=False, dynamic_shapes=shapes, **common
        )
    else:
        axes = {k: dict(dynamic[k]) for k in names}
        axes["pooler_output"] = {0: "batch"}
        torch.onnx.export(tower, tuple(inputs.values()), str(path), dynamo=False, dynamic_axes=axes, **common)


def _parity(expected: torch.Tensor, got: torch.Tensor) -> dict[str, float]:
    cosine = torch.nn.functional.cosine_similarity(expected.double(), got.double(), dim=-1)
    return {"max_abs_diff": float((expected - got).abs().max()), "min_cosine": float(cosine.min())}


def _write_side_files(model: Any, processor: Any, directory: Path) -> None:
    model.config.save_pretrained(directory)
    processor.save_pretrained(directory)


def export_onnx(
    model: Any,
    processor: Any,
    output_dir: str | os.PathLike,
    *,
    quantize: str | None = None,
    exporter: str = "dynamo",
    opset: int | None = None,
) -> Path:
    """Export ``model``'s two towers to ``output_dir`` (see the module docstring); returns the folder.

    Args:
        model: a ``MotionPatchModel`` (or interaction model); it is put in eval mode.
        processor: its ``MotionPatchProcessor`` (saved beside the graphs; also builds the example inputs).
        output_dir: created if needed; existing export files in it are replaced.
        quantize: ``None`` (fp32) or ``"int8"`` (dynamic int8 weights, :func:`quantize_onnx`).
        exporter: ``"dynamo"`` (``torch.onnx.export(dynamo=True)``) or ``"torchscript"`` (the legacy tracer).
        opset: ONNX opset; the exporter's default when ``None``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be None or one of {QUANTIZATIONS}, got {quantize!r}.")
    for name in ("feature_extractor", "tokenizer"):
        if getattr(processor, name, None) is None:
            raise ValueError(f"export_onnx needs a MotionPatchProcessor with a {name}; got {type(processor).__name__}.")
    try:
        import onnx
    except ImportError as err:
        raise ImportError("ONNX export needs onnx and onnxruntime: `pip install \"motionpatch[onnx]\"`.") from err

    output = Path(output_dir)
    if quantize is not None:
        with tempfile.TemporaryDirectory(prefix="motionpatch-onnx-") as tmp:
            export_onnx(model, processor, tmp, exporter=exporter, opset=opset)
            return quantize_onnx(tmp, output, quantize)

    model.eval()
    motion_inputs, text_inputs, ignored = _example_inputs(model, processor)
    output.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: "batch"} for name in motion_inputs}
    dynamic.update({name: {0: "batch", 1: "sequence"} for name in text_inputs})
    towers = {
        "motion": (_MotionTower(model), motion_inputs, MOTION_ENCODER_FILE),
        "text": (_TextTower(model), text_inputs, TEXT_ENCODER_FILE),
    }
    expected = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=FutureWarning)
        for kind, (tower, inputs, filename) in towers.items():
            tower.eval()
            with torch.no_grad():
                expected[kind] = tower(**inputs).float()
                _export_graph(tower, inputs, output / filename, exporter, opset, dynamic)

    graph = onnx.load(str(output / MOTION_ENCODER_FILE), load_external_data=False)
    export_config = {
        "format": ONNX_FORMAT,
        "version": ONNX_FORMAT_VERSION,
        "logit_scale": float(model.logit_scale.detach().float()),
        "motion_inputs": list(motion_inputs),
        "text_inputs": list(text_inputs),
        "ignored_inputs": ignored,
        "output": "pooler_output (projected, not normalised)",
        "exporter": exporter,
        "opset": max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")),
        "torch_version": torch.__version__,
        "quantization": None,
    }
    (output / ONNX_CONFIG_FILE).write_text(json.dumps(export_config, indent=2), encoding="utf-8")
    _write_side_files(model, processor, output)
    _record_parity(output, {"motion": motion_inputs, "text": text_inputs}, expected)
    return output


def _record_parity(directory: Path, inputs: dict[str, dict], expected: dict[str, torch.Tensor]) -> None:
    """Run the exported graphs on the example inputs and store their agreement with eager in onnx_config.json."""
    onnx_model = MotionPatchOnnxModel.from_pretrained(directory)
    got = {
        "motion": onnx_model.get_motion_features(**inputs["motion"]).pooler_output,
        "text": onnx_model.get_text_features(**inputs["text"]).pooler_output,
    }
    path = directory / ONNX_CONFIG_FILE
    export_config = json.loads(path.read_text(encoding="utf-8"))
    export_config["parity_with_eager"] = {kind: _parity(expected[kind], got[kind]) for kind in ("motion", "text")}
    path.write_text(json.dumps(export_config, indent=2), encoding="utf-8")


def quantize_onnx(source_dir: str | os.PathLike, output_dir: str | os.PathLike, quantize: str = "int8") -> Path:
    """Write an int8 copy of the fp32 export in ``source_dir`` to ``output_dir`` (may be the same folder).

    Weights of MatMul (and the embedding Gather) become int8 with onnxruntime's ``quantize_dynamic``
    (activations are quantised per batch at run time); onnxruntime's ``quant_pre_process`` (shape inference)
    runs first, as its documentation recommends. The patch-embedding ``Conv`` stays fp32
    (:data:`INT8_OP_TYPES`): with the Conv quantised too the int8 motion graph is slower on CPU (``bench_onnx.py
    --conv-ab``: 118 against 131 motions/s, 6 x 384 ViT, batch 32, 2 threads; ``benchmarks/README.md``).
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}.")
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as err:
        raise ImportError("quantisation needs onnxruntime: `pip install \"motionpatch[onnx]\"`.") from err
    source, output = Path(source_dir), Path(output_dir)
    export_config = json.loads((source / ONNX_CONFIG_FILE).read_text(encoding="utf-8"))
    if export_config.get("quantization"):
        raise ValueError(f"{str(source)!r} is already quantised ({export_config['quantization']}); export fp32 first.")
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="motionpatch-quant-") as tmp:
        for filename in (MOTION_ENCODER_FILE, TEXT_ENCODER_FILE):
            prepared = Path(tmp) / filename
            quant_pre_process(str(source / filename), str(prepared), skip_symbolic_shape=True)
            quantize_dynamic(str(prepared), str(output / filename), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=list(INT8_OP_TYPES))
    if source.resolve() != output.resolve():
        for item in source.iterdir():
            if item.name not in (MOTION_ENCODER_FILE, TEXT_ENCODER_FILE) and item.is_file():
                shutil.copy2(item, output / item.name)
    export_config["quantization"] = {"method": "onnxruntime.quantization.quantize_dynamic", "weights": "int8",
                                     "per_channel": True, "op_types": list(INT8_OP_TYPES)}
    export_config.pop("parity_with_eager", None)  # that was the fp32 graphs' figure
    (output / ONNX_CONFIG_FILE).write_text(json.dumps(export_config, indent=2), encoding="utf-8")
    return output


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``motionpatch-export``."""
    parser = argparse.ArgumentParser(
        prog="motionpatch-export",
        description="Export a MotionPatch model's motion and text towers to ONNX (fp32, or int8 with --quantize).",
    )
    parser.add_argument("--model", required=True, help="a saved model folder (model + processor files)")
    parser.add_argument("--output", required=True, help="folder to write the ONNX files into")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default=None, help="dynamic int8 weight quantisation")
    parser.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="torch.onnx exporter (default dynamo)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    args = parser.parse_args(argv)

    from transformers import AutoModel, AutoProcessor

    from .. import MotionPatchConfig  # noqa: F401  (registers the Auto classes)

    model = AutoModel.from_pretrained(args.model)
    try:
        processor = AutoProcessor.from_pretrained(args.model)
    except (OSError, ValueError, TypeError) as err:
        raise SystemExit(
            f"motionpatch-export: no processor could be loaded from {args.model!r} ({err}); save it beside the model "
            "with processor.save_pretrained(MODEL_DIR)."
        ) from None
    out = export_onnx(model, processor, args.output, quantize=args.quantize, exporter=args.exporter, opset=args.opset)
    export_config = json.loads((out / ONNX_CONFIG_FILE).read_text(encoding="utf-8"))
    print(json.dumps({"output": str(out), **{k: export_config.get(k) for k in (
        "motion_inputs", "text_inputs", "exporter", "opset", "quantization", "parity_with_eager")}}, indent=2))


if __name__ == "__main__":
    main()
