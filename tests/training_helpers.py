"""Shared pieces of the training tests: a tiny text encoder folder and tiny ``motionpatch-train`` arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """One torch thread, and Accelerate's process-wide state reset after each in-process training run (import this
    fixture into a test module to use it there)."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    torch.set_num_threads(1)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory, tokenizer_dir):
    """The tiny text encoder folder of :func:`make_tiny_text_dir`, once per module."""
    return make_tiny_text_dir(tokenizer_dir, tmp_path_factory.mktemp("text") / "tiny")


def make_tiny_text_dir(tokenizer_dir: Path, target: Path) -> Path:
    """A folder with the test tokenizer and a 2-layer, 32-wide DistilBERT config (weights built from scratch)."""
    from transformers import AutoTokenizer, DistilBertConfig

    if not (target / "config.json").exists():
        shutil.copytree(tokenizer_dir, target, dirs_exist_ok=True)
        vocab = len(AutoTokenizer.from_pretrained(target))
        DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                         max_position_embeddings=64).save_pretrained(target)
    return target


def tiny_args(text_dir: Path, output_dir: Path, **overrides) -> list[str]:
    """Command-line flags of a seconds-long CPU run on a tiny synthetic dataset."""
    args = {
        "dataset": "synthetic",
        "synthetic_num_train": 48,
        "synthetic_num_validation": 8,
        "synthetic_num_test": 8,
        "text_model_name_or_path": str(text_dir),
        "text_from_scratch": "true",
        "motion_hidden_size": 32,
        "motion_num_layers": 2,
        "motion_num_heads": 2,
        "motion_intermediate_size": 64,
        "max_frames": 64,
        "projection_dim": 16,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "num_train_epochs": 2,
        "learning_rate_motion": 1e-3,
        "learning_rate_text": 1e-3,
        "learning_rate_heads": 1e-3,
        "warmup_steps": 2,
        "logging_steps": 1,
        "output_dir": str(output_dir),
        "disable_tqdm": "true",
        "seed": 7,
    }
    args.update({k: v for k, v in overrides.items()})
    out: list[str] = []
    for k, v in args.items():
        if v is None:
            continue
        out += [f"--{k}"] + ([str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)])
    return out


def train_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "motionpatch_training.train", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_training(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(args), env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))
