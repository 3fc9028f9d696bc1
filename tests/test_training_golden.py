"""A pinned training run: the loop's numbers, logs and checkpoint layout must not change.

One in-process ``train()`` on a tiny synthetic config that switches on every part of the loop that a refactor
could silently change: gradient accumulation, clipping, a learnable (clamped) temperature, dropout, mirroring,
warm-up + cosine schedule, the body frame and the augmentations (speed, clip length, heading, body size), step checkpoints and epoch checkpoints, per-epoch validation with model selection,
and the final test evaluation. Its fingerprint (logged losses, learning rates, gradient norms, temperature,
validation / test metrics, and per-module checksums of the saved weights) is compared with the values recorded
from the reference loop, with a relative tolerance of 1e-5 (plus one unit of the log's rounding for logged numbers): far below what any change of the computation (one
step more or less, another RNG order, a missed clip or scheduler step) moves, far above the last-bit differences
between CPUs' float kernels, so the pin holds on any machine with the CPU torch wheel. The log record types and
their keys, and the files of a checkpoint and of ``best/``, are compared exactly.

Regenerate the reference (only when the training computation is meant to change) with
``MOTIONPATCH_PRINT_GOLDEN=1 python -m pytest -q -s tests/test_training_golden.py`` and paste the printed
dictionary over ``REFERENCE``.
"""

from __future__ import annotations

import json
import math
import os
import pprint
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training_helpers import make_tiny_text_dir, tiny_args  # noqa: E402

RTOL = 1e-5
ATOL = 1e-7
#: the log rounds grad_norm and logit_scale to 4 decimals: a last-bit difference can flip the last digit
LOGGED_ATOL = 1e-4


def golden_args(text_dir: Path, out: Path) -> list[str]:
    return tiny_args(
        text_dir, out, num_train_epochs=2, gradient_accumulation_steps=2, max_grad_norm=0.5,
        learnable_temperature="true", mirror_probability=0.5, projection_dropout=0.3, checkpointing_steps=2,
        save_total_limit=2, dataloader_num_workers=0, eval_protocols="all", torch_num_threads=1,
        augment_speed=1.2, augment_scale=0.1, augment_heading_degrees=10, augment_crop_probability=0.5,
    )


def weight_checksums(path: Path) -> dict[str, list[float]]:
    """Per top-level module: ``[sum |w|, sum w * sin(i)]`` over its tensors (float64), a compact weight fingerprint."""
    sums: dict[str, list[float]] = {}
    for name, t in sorted(load_file(str(path)).items()):
        x = t.double().flatten()
        probe = torch.sin(torch.arange(x.numel(), dtype=torch.float64))
        slot = sums.setdefault(name.split(".")[0], [0.0, 0.0])
        slot[0] += float(x.abs().sum())
        slot[1] += float((x * probe).sum())
    return sums


def fingerprint(out: Path) -> dict:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    numeric = {}
    for r in records:
        if r["type"] == "train":
            numeric[f"train/{r['step']}"] = [r[k] for k in sorted(r) if k.startswith(("loss", "lr/", "grad", "logit"))]
        elif r["type"] == "eval":
            prefix = "val/" if r["split"] == "validation" else "test/"
            numeric[f"{prefix}{r['step']}"] = [r[k] for k in sorted(r) if k.startswith(prefix)]
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    return {
        "numbers": numeric,
        "weights": weight_checksums(out / "best" / "model.safetensors"),
        "records": [[r["type"], r.get("where"), r.get("split"), r["step"], sorted(r)] for r in records],
        "checkpoints": checkpoints,
        "checkpoint_files": sorted(p.name for p in (out / "checkpoints" / checkpoints[-1]).iterdir()),
        # the model's code files (remote code, copied from the library) are left out: they follow the library
        "best_files": sorted(p.name for p in (out / "best").iterdir() if p.suffix != ".py"),
        "summary_keys": sorted(json.loads((out / "summary.json").read_text())),
    }


def _assert_close(actual, expected, where: str, atol: float = ATOL) -> None:
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for k in expected:
            _assert_close(actual[k], expected[k], f"{where}/{k}", atol)
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: {actual} != {expected}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_close(a, e, f"{where}[{i}]", atol)
    elif isinstance(expected, float):
        assert math.isclose(actual, expected, rel_tol=RTOL, abs_tol=atol), f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def run_golden(tmp: Path, tokenizer_dir: Path) -> dict:
    from motionpatch_training.arguments import parse_args
    from motionpatch_training.train import train

    text_dir = make_tiny_text_dir(tokenizer_dir, tmp / "text")
    out = tmp / "run"
    train(*parse_args(golden_args(text_dir, out)))
    return fingerprint(out)


def test_training_run_matches_the_reference(tmp_path, tokenizer_dir):
    got = run_golden(tmp_path, tokenizer_dir)
    if os.environ.get("MOTIONPATCH_PRINT_GOLDEN"):
        print("REFERENCE: dict = ", end="")
        pprint.pprint(got, width=118, compact=True, sort_dicts=False)
    for key in ("records", "checkpoints", "checkpoint_files", "best_files", "summary_keys"):
        assert got[key] == REFERENCE[key], f"{key} changed:\n{got[key]}\n!=\n{REFERENCE[key]}"
    _assert_close(got["numbers"], REFERENCE["numbers"], "numbers", LOGGED_ATOL)
    _assert_close(got["weights"], REFERENCE["weights"], "weights")


def test_fingerprint_sees_a_changed_weight(tmp_path):
    """The weight checksum moves when a single weight moves by far less than one optimizer step would."""
    from safetensors.torch import save_file

    w = {"a.weight": torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), "b.bias": torch.ones(3)}
    save_file(w, str(tmp_path / "w.safetensors"))
    before = weight_checksums(tmp_path / "w.safetensors")
    w["a.weight"][2, 5] += 1e-3
    save_file(w, str(tmp_path / "w.safetensors"))
    after = weight_checksums(tmp_path / "w.safetensors")
    with pytest.raises(AssertionError):
        _assert_close(after, before, "weights")
    _assert_close(after["b"], before["b"], "weights/b")


REFERENCE: dict = {'numbers': {'train/1': [135.5429, 2.6593, 3.644689, 0.0005, 0.0005, 0.0005],
             'train/2': [126.5303, 2.6588, 3.560192, 0.001, 0.001, 0.001],
             'train/3': [146.2566, 2.6578, 3.968604, 0.0008535533905932737, 0.0008535533905932737,
                         0.0008535533905932737],
             'val/3': [3.75, 4.0, 12.5, 100.0, 37.5, 37.5, 87.5, 375.0, 4.5, 4.5, 12.5, 100.0, 25.0, 37.5, 62.5,
                       4.9861],
             'train/4': [77.5183, 2.6569, 3.52791, 0.0005, 0.0005, 0.0005],
             'train/5': [59.9931, 2.6564, 3.028022, 0.00014644660940672628, 0.00014644660940672628,
                         0.00014644660940672628],
             'train/6': [85.9605, 2.6563, 2.885228, 0.0, 0.0, 0.0],
             'val/6': [3.5, 3.0, 12.5, 100.0, 37.5, 62.5, 87.5, 375.0, 4.5, 4.5, 12.5, 100.0, 25.0, 37.5, 62.5,
                       2.1143],
             'test/6': [4.75, 5.5, 0.0, 100.0, 12.5, 37.5, 50.0, 325.0, 4.5, 4.5, 12.5, 100.0, 25.0, 37.5, 62.5]},
 'weights': {'logit_scale': [2.6577565670013428, 0.0],
             'motion_fc_norm': [32.04009712030529, -0.12322345504012333],
             'motion_model': [796.275879316915, 2.1146874030618257],
             'motion_projection': [28.167092960866285, 1.6256774905527942],
             'text_model': [473.6692804733903, 1.5238797135603201],
             'text_projection': [28.586511062712816, 1.3650093179006084]},
 'records': [['train', None, None, 1,
              ['epoch', 'grad_norm', 'logit_scale', 'loss', 'lr/heads', 'lr/motion_tower', 'lr/text_tower',
               'samples_per_second', 'step', 'step_seconds', 'time', 'type']],
             ['train', None, None, 2,
              ['epoch', 'grad_norm', 'logit_scale', 'loss', 'lr/heads', 'lr/motion_tower', 'lr/text_tower',
               'samples_per_second', 'step', 'step_seconds', 'time', 'type']],
             ['checkpoint', 'steps', None, 2, ['epoch', 'path', 'step', 'time', 'type', 'where']],
             ['train', None, None, 3,
              ['epoch', 'grad_norm', 'logit_scale', 'loss', 'lr/heads', 'lr/motion_tower', 'lr/text_tower',
               'samples_per_second', 'step', 'step_seconds', 'time', 'type']],
             ['eval', 'epoch', 'validation', 3,
              ['best', 'epoch', 'seconds', 'split', 'step', 'time', 'type', 'val/all/m2t/MeanR', 'val/all/m2t/MedR',
               'val/all/m2t/R@1', 'val/all/m2t/R@10', 'val/all/m2t/R@2', 'val/all/m2t/R@3', 'val/all/m2t/R@5',
               'val/all/rsum', 'val/all/t2m/MeanR', 'val/all/t2m/MedR', 'val/all/t2m/R@1', 'val/all/t2m/R@10',
               'val/all/t2m/R@2', 'val/all/t2m/R@3', 'val/all/t2m/R@5', 'val/loss', 'where']],
             ['checkpoint', 'epoch', None, 3, ['epoch', 'path', 'step', 'time', 'type', 'where']],
             ['train', None, None, 4,
              ['epoch', 'grad_norm', 'logit_scale', 'loss', 'lr/heads', 'lr/motion_tower', 'lr/text_tower',
               'samples_per_second', 'step', 'step_seconds', 'time', 'type']],
             ['checkpoint', 'steps', None, 4, ['epoch', 'path', 'step', 'time', 'type', 'where']],
             ['train', None, None, 5,
              ['epoch', 'grad_norm', 'logit_scale', 'loss', 'lr/heads', 'lr/motion_tower', 'lr/text_tower',
               'samples_per_second', 'step', 'step_seconds', 'time', 'type']],
             ['train', None, None, 6,
              ['epoch', 'grad_norm', 'logit_scale', 'loss', 'lr/heads', 'lr/motion_tower', 'lr/text_tower',
               'samples_per_second', 'step', 'step_seconds', 'time', 'type']],
             ['checkpoint', 'steps', None, 6, ['epoch', 'path', 'step', 'time', 'type', 'where']],
             ['eval', 'epoch', 'validation', 6,
              ['best', 'epoch', 'seconds', 'split', 'step', 'time', 'type', 'val/all/m2t/MeanR', 'val/all/m2t/MedR',
               'val/all/m2t/R@1', 'val/all/m2t/R@10', 'val/all/m2t/R@2', 'val/all/m2t/R@3', 'val/all/m2t/R@5',
               'val/all/rsum', 'val/all/t2m/MeanR', 'val/all/t2m/MedR', 'val/all/t2m/R@1', 'val/all/t2m/R@10',
               'val/all/t2m/R@2', 'val/all/t2m/R@3', 'val/all/t2m/R@5', 'val/loss', 'where']],
             ['checkpoint', 'epoch', None, 6, ['epoch', 'path', 'step', 'time', 'type', 'where']],
             ['eval', None, 'test', 6,
              ['best_step', 'chance/all/m2t/MeanR', 'chance/all/m2t/MedR', 'chance/all/m2t/R@1',
               'chance/all/m2t/R@10', 'chance/all/m2t/R@2', 'chance/all/m2t/R@3', 'chance/all/m2t/R@5',
               'chance/all/rsum', 'chance/all/t2m/MeanR', 'chance/all/t2m/MedR', 'chance/all/t2m/R@1',
               'chance/all/t2m/R@10', 'chance/all/t2m/R@2', 'chance/all/t2m/R@3', 'chance/all/t2m/R@5', 'seconds',
               'split', 'step', 'test/all/m2t/MeanR', 'test/all/m2t/MedR', 'test/all/m2t/R@1', 'test/all/m2t/R@10',
               'test/all/m2t/R@2', 'test/all/m2t/R@3', 'test/all/m2t/R@5', 'test/all/rsum', 'test/all/t2m/MeanR',
               'test/all/t2m/MedR', 'test/all/t2m/R@1', 'test/all/t2m/R@10', 'test/all/t2m/R@2', 'test/all/t2m/R@3',
               'test/all/t2m/R@5', 'time', 'type']],
             ['summary', None, None, 6, ['step', 'time', 'total_seconds', 'train_seconds', 'type']]],
 'checkpoints': ['checkpoint-4', 'checkpoint-6'],
 'checkpoint_files': ['custom_checkpoint_0.pkl', 'model.safetensors', 'optimizer.bin', 'random_states_0.pkl',
                      'scheduler.bin', 'trainer_state.json'],
 'best_files': ['README.md', 'config.json', 'model.safetensors', 'processor_config.json', 'test_results.json',
                'tokenizer.json', 'tokenizer_config.json', 'training_args.yaml', 'validation_results.json'],
 'summary_keys': ['best_dir', 'best_metric', 'best_step', 'chance_metrics', 'epochs_completed', 'global_step',
                  'output_dir', 'pushed_to', 'samples_per_second', 'test_metrics', 'test_table', 'total_seconds',
                  'train_seconds', 'validation_metrics']}

