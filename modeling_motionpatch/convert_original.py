"""Convert an original MotionPatches checkpoint (Yu, Tanaka, Fujiwara, CVPR 2024) into a Hub-native folder.

Console script::

    motionpatch-convert-original --checkpoint best_model.pt --dataset humanml3d \\
        --mean Mean_raw.npy --std Std_raw.npy --tokenizer distilbert-base-uncased --output motionpatch-humanml3d

The original checkpoint layout (read without the original code; ``torch.load(weights_only=True)`` only):

- ``motion_encoder.model.*``: a timm ViT-B/16 built with ``img_size=(224, 80)``, ``num_classes=0``,
  ``global_pool="avg"`` (no final ``norm`` weights; ``fc_norm`` is a LayerNorm over the mean of the patch tokens);
- ``text_encoder.text_model.*``: a transformers `DistilBertModel`, pooled at token 0;
- ``motion_projection.*`` / ``text_projection.*``: ``projection`` (Linear), ``fc`` (Linear), ``layer_norm``;
- ``logit_scale``: a scalar (float64), fixed.

The output folder holds ``config.json``, ``model.safetensors``, the processor (skeleton, statistics, tokenizer),
the model code (``trust_remote_code``) and a model card with the original licence (CC BY-NC 4.0) and citation.
It is written into a temporary folder next to ``--output`` and moved into place only when complete.

Reading the checkpoint into a model and the statistics is :mod:`modeling_motionpatch.original_checkpoint`
; this module writes the folder and its card, and holds the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from string import Template

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer

from .apps.atomic_folder import atomic_folder
from .apps.folder_checks import record_processor
from .feature_extraction_motionpatch import MotionPatchFeatureExtractor
from .modeling_motionpatch import MotionPatchModel
from .original_checkpoint import (
    PRESETS,
    ConversionError,
    DatasetPreset,
    build_model_from_original,
    load_original_state_dict,
    load_statistics_file,
    statistics_from_dataset,
)
from .pretrained_towers import quiet_transformers
from .processing_motionpatch import MotionPatchProcessor
from .skeletons import get_skeleton

ORIGINAL_LICENSE = "cc-by-nc-4.0"
CITATION = (
    "@inproceedings{yu2024motionpatches,\n"
    "  title     = {Exploring Vision Transformers for 3D Human Motion-Language Models with Motion Patches},\n"
    "  author    = {Yu, Qing and Tanaka, Mikihiro and Fujiwara, Kent},\n"
    "  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},\n"
    "  year      = {2024}\n"
    "}"
)

# ---------------------------------------------------------------------------
# model card
# ---------------------------------------------------------------------------
def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _card_template() -> str:
    try:
        from importlib.resources import files

        return files("motionpatch_hub_cards").joinpath("model_card_converted.md").read_text(encoding="utf-8")
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        return (
            "---\nlicense: cc-by-nc-4.0\nlibrary_name: transformers\ntags:\n  - motionpatch\n  - ${dataset}\n---\n\n"
            "# MotionPatches (${dataset_name}), converted\n\n"
            "Original weights by Yu, Tanaka and Fujiwara (CVPR 2024), "
            "licence CC BY-NC 4.0 (non-commercial use only). Source `${checkpoint_name}` (sha256 "
            "`${checkpoint_sha256}`).\n\n## Normalisation statistics\n\n${statistics}\n\n## Citation\n\n```bibtex\n"
            + CITATION.replace("$", "$$")
            + "\n```\n"
        )


def render_model_card(
    model: MotionPatchModel,
    preset: DatasetPreset,
    checkpoint: str | os.PathLike,
    statistics: str,
    tokenizer: str,
    repo_id: str,
) -> str:
    """The README.md of a converted folder: licence (CC BY-NC 4.0), citation, statistics and provenance."""
    import transformers

    from . import __version__

    config = model.config
    scale = float(config.logit_scale_init_value)
    skeleton = get_skeleton(preset.skeleton)
    text = config.text_config
    values = {
        "dataset": preset.name,
        "dataset_name": preset.display_name,
        "image_size": "x".join(str(x) for x in config.motion_config.image_size),
        "motion_layers": config.motion_config.num_hidden_layers,
        "motion_hidden": config.motion_config.hidden_size,
        "patch_size": config.motion_config.patch_size,
        "max_frames": config.max_frames,
        "points_per_part": config.points_per_part,
        "projection_dim": config.projection_dim,
        "text_model_type": text.model_type,
        "text_layers": getattr(text, "num_hidden_layers", "?"),
        "text_hidden": text.hidden_size,
        "logit_scale": f"{scale:.6f} (temperature {math.exp(-scale):.4f})",
        "repo_id": repo_id,
        "num_joints": skeleton.num_joints,
        "fps": f"{preset.fps:g}",
        "skeleton": preset.skeleton,
        "input_fps_note": (
            f"; motions at {preset.input_fps:g} fps are resampled to {preset.fps:g} fps by the processor "
            f"(`{preset.fps_mode}`)"
            if preset.input_fps
            else ""
        ),
        "input_fps_row": f", input fps {preset.input_fps:g} ({preset.fps_mode})" if preset.input_fps else "",
        "statistics": statistics,
        "checkpoint_name": os.path.basename(os.fspath(checkpoint)),
        "checkpoint_sha256": _sha256(checkpoint),
        "projection_dropout": f"{preset.projection_dropout:g}",
        "tokenizer": f"{Path(tokenizer).name} (local folder)" if os.path.isdir(tokenizer) else tokenizer,
        "motionpatch_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    try:
        from motionpatch_hub_cards.usage import usage_snippet

        fps = preset.input_fps or preset.fps  # what the processor expects
        values["usage"] = usage_snippet(repo_id, preset.skeleton, skeleton.num_joints, fps)
    except ImportError:  # the card templates are not installed: the fallback card has no usage section
        pass
    return Template(_card_template()).safe_substitute(values)


# ---------------------------------------------------------------------------
# the conversion
# ---------------------------------------------------------------------------
def _statistics(preset: DatasetPreset, mean, std, stats_from, stats_split) -> tuple[np.ndarray, np.ndarray, str]:
    skeleton = get_skeleton(preset.skeleton)
    j = skeleton.num_joints
    if stats_from is not None and (mean is not None or std is not None):
        raise ConversionError("Give either --mean/--std or --stats-from, not both.")
    if stats_from is not None:
        m, s, note = statistics_from_dataset(stats_from, preset.skeleton, stats_split)
        return m, s, f"{note} Shape ({j}, 3)."
    if mean is None or std is None:
        raise ConversionError(
            "Normalisation statistics are required: pass --mean and --std (.npy, the training set's raw joint "
            f"position statistics, shape ({j}, 3)) or --stats-from a prepared dataset folder."
        )
    m = load_statistics_file(mean, "mean", j, preset.skeleton)
    s = load_statistics_file(std, "std", j, preset.skeleton)
    return (
        m,
        s,
        (
            f"From the files `{os.path.basename(os.fspath(mean))}` (sha256 `{_sha256(mean)}`) and "
            f"`{os.path.basename(os.fspath(std))}` (sha256 `{_sha256(std)}`), shape ({j}, 3): the training "
            "set's mean and std of raw joint positions."
        ),
    )


def _verify(folder: str, model: MotionPatchModel) -> None:
    with quiet_transformers():
        reloaded = MotionPatchModel.from_pretrained(folder)
    expected = model.state_dict()
    for key, value in reloaded.state_dict().items():
        if key not in expected or not torch.equal(value, expected[key]):
            raise ConversionError(f"Verification failed: {key} differs after saving and reloading the folder.")


def convert_original_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    dataset: str = "humanml3d",
    mean: str | os.PathLike | None = None,
    std: str | os.PathLike | None = None,
    stats_from: str | os.PathLike | None = None,
    stats_split: str = "train",
    tokenizer: str = "distilbert-base-uncased",
    text_config: str | os.PathLike | None = None,
    motion_num_attention_heads: int | None = None,
    overwrite: bool = False,
    verify: bool = True,
    push_to_hub: str | None = None,
    private: bool = False,
) -> Path:
    """Convert an original checkpoint into a Hub-native folder (model, processor, card); returns the folder.

    Everything is read and checked in memory first; the folder is then written into a temporary folder next to
    ``output`` that replaces it in one rename (:func:`~modeling_motionpatch.apps.atomic_folder.atomic_folder`). On any
    error the temporary folder is removed, so no half-written output is left. See the module docstring for the
    layout and :data:`PRESETS` for the datasets.
    """
    if dataset not in PRESETS:
        raise ConversionError(f"Unknown dataset {dataset!r}; choose one of {sorted(PRESETS)}.")
    preset = PRESETS[dataset]
    output = Path(output).absolute()
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise ConversionError(
            f"Output {str(output)!r} exists and is not an empty folder; pass --overwrite to replace it."
        )

    # 1. read and check everything in memory
    tconfig = None
    if text_config is not None:
        try:
            tconfig = AutoConfig.from_pretrained(os.fspath(text_config))
        except (OSError, ValueError) as err:
            raise ConversionError(f"Could not load --text-config {os.fspath(text_config)!r}: {err}") from None
    state = load_original_state_dict(checkpoint)
    model = build_model_from_original(state, dataset, tconfig, motion_num_attention_heads)
    mean_arr, std_arr, stats_note = _statistics(preset, mean, std, stats_from, stats_split)
    try:
        tok = AutoTokenizer.from_pretrained(os.fspath(tokenizer))
    except (OSError, ValueError) as err:
        raise ConversionError(f"Could not load --tokenizer {os.fspath(tokenizer)!r}: {err}") from None
    vocab = int(model.config.text_config.vocab_size)
    if len(tok) > vocab:
        raise ConversionError(
            f"The tokenizer {os.fspath(tokenizer)!r} has {len(tok)} tokens but the checkpoint's text encoder embeds "
            f"only {vocab}; use the tokenizer the checkpoint was trained with (distilbert-base-uncased)."
        )
    try:
        feature_extractor = MotionPatchFeatureExtractor(
            preset.skeleton,
            mean_arr,
            std_arr,
            max_frames=model.config.max_frames,
            points_per_part=model.config.points_per_part,
            frames_per_patch=model.config.frames_per_patch,
            points_per_patch=model.config.points_per_patch,
            fps=preset.fps,
            input_fps=preset.input_fps,
            fps_mode=preset.fps_mode,
        )
    except ValueError as err:
        raise ConversionError(f"Invalid statistics: {err}") from None
    processor = MotionPatchProcessor(feature_extractor, tok)
    record_processor(model.config, processor)
    card = render_model_card(model, preset, checkpoint, stats_note, os.fspath(tokenizer), push_to_hub or output.name)

    # 2. write atomically: a temporary sibling that replaces `output` (old content and all) once complete
    with atomic_folder(output, keep=None) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        Path(tmp, "README.md").write_text(card, encoding="utf-8")
        if verify:
            _verify(str(tmp), model)

    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=push_to_hub,
            folder_path=str(output),
            commit_message=f"Convert original MotionPatches {preset.display_name} checkpoint",
        )
    return output


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motionpatch-convert-original",
        description="Convert an original MotionPatches checkpoint (CVPR 2024) into a Hub-native MotionPatchModel "
        "folder (config.json, model.safetensors, processor, model card).",
    )
    parser.add_argument("--checkpoint", required=True, help="the original checkpoint (best_model.pt)")
    parser.add_argument("--dataset", required=True, choices=sorted(PRESETS), help="the dataset it was trained on")
    parser.add_argument("--mean", help="Mean_raw.npy: mean of raw joint positions, (joints, 3)")
    parser.add_argument("--std", help="Std_raw.npy: std of raw joint positions, (joints, 3)")
    parser.add_argument("--stats-from", help="compute mean/std from a prepared dataset folder instead")
    parser.add_argument(
        "--stats-split", default="train", help="split of --stats-from to use, or 'all' (default: %(default)s)"
    )
    parser.add_argument(
        "--tokenizer", default="distilbert-base-uncased", help="tokenizer folder or Hub id (default: %(default)s)"
    )
    parser.add_argument("--text-config", help="text encoder config folder/Hub id (default: inferred DistilBERT)")
    parser.add_argument("--motion-num-heads", type=int, help="attention heads of the motion ViT (default: hidden/64)")
    parser.add_argument("--output", required=True, help="output folder (written atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip reloading the written folder to compare weights"
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``motionpatch-convert-original``; returns 0 on success, 2 on invalid inputs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.private and not args.push_to_hub:
        parser.error("--private only applies with --push-to-hub")
    try:
        folder = convert_original_checkpoint(
            args.checkpoint,
            args.output,
            dataset=args.dataset,
            mean=args.mean,
            std=args.std,
            stats_from=args.stats_from,
            stats_split=args.stats_split,
            tokenizer=args.tokenizer,
            text_config=args.text_config,
            motion_num_attention_heads=args.motion_num_heads,
            overwrite=args.overwrite,
            verify=not args.no_verify,
            push_to_hub=args.push_to_hub,
            private=args.private,
        )
    except ValueError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {folder}" + (f" and pushed it to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["CITATION", "ORIGINAL_LICENSE", "build_parser", "convert_original_checkpoint", "main", "render_model_card"]
