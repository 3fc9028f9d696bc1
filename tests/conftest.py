"""Shared fixtures: tiny configs, an offline tokenizer, and the real data folder when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = (
    "a person walks forward slowly quickly jumps runs kicks with the left right leg hand waves turns sits down "
    "squats raises arms someone ahead backwards in circle walk run jump kick wave"
).split()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it ships beside the repository, not in it)")
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny uncased WordPiece tokenizer saved to a folder (no download)."""
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tokenizer")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + sorted(set(WORDS))
    tok = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def tiny_config(vocab_size: int = 64, **overrides):
    from modeling_motionpatch import MotionPatchConfig

    kwargs = dict(
        motion_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=[64, 80]
        ),
        text_config=dict(
            model_type="distilbert", vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
            max_position_embeddings=64,
        ),
        projection_dim=16,
    )
    kwargs.update(overrides)
    return MotionPatchConfig(**kwargs)


@pytest.fixture
def tiny_model(tokenizer):
    from modeling_motionpatch import MotionPatchModel

    torch.manual_seed(0)
    return MotionPatchModel(tiny_config(vocab_size=len(tokenizer)))


@pytest.fixture
def tiny_processor(tokenizer):
    from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor

    return MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tokenizer)


def _rotations(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle vectors ``(..., 3)`` (Rodrigues)."""
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)[..., None]
    k = axis_angle / np.maximum(np.linalg.norm(axis_angle, axis=-1, keepdims=True), 1e-12)
    kx = np.zeros(axis_angle.shape + (3,))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def random_poses(frames: int, rng: np.random.Generator, spread: float = 0.6) -> np.ndarray:
    """A random but body-like ``(frames, 22, 3)`` SMPL motion: the reference skeleton's bones (constant lengths) turned
    by random joint rotations of up to about ``spread`` radians in every frame, upright, at a random place. Each call
    differs a lot from the next, as random arrays do, and passes the feature extractor's skeleton checks."""
    from modeling_motionpatch.skeletons import HUMANML3D, REFERENCE_POSES

    rest = np.asarray(REFERENCE_POSES["humanml3d"], dtype=np.float64)
    parents = HUMANML3D.parents
    local = _rotations(rng.uniform(-spread, spread, size=(frames, 22, 3)) * np.array([1.0, 0.5, 1.0]))
    local[:, 0] = _rotations(np.array([0.0, rng.uniform(-np.pi, np.pi), 0.0]))  # a heading per motion
    world_rot = np.empty_like(local)
    pos = np.empty((frames, 22, 3))
    world_rot[:, 0], pos[:, 0] = local[:, 0], rest[0] + rng.normal(0, 0.5, size=(frames, 3)) * [1, 0.05, 1]
    for j in range(1, 22):  # parents come first in the SMPL order
        p = parents[j]
        world_rot[:, j] = world_rot[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + (world_rot[:, p] @ (rest[j] - rest[p]))
    return pos.astype(np.float32)


def random_motions(n: int, joints: int = 22, seed: int = 0, lengths=(20, 90)) -> list[np.ndarray]:
    """``n`` random motions of random lengths: body-like SMPL motions for 22 joints (:func:`random_poses`), Gaussian
    arrays for other joint counts (skeletons without a reference pose are not checked)."""
    rng = np.random.default_rng(seed)
    if joints == 22:
        return [random_poses(int(rng.integers(*lengths)), rng) for _ in range(n)]
    return [rng.normal(size=(int(rng.integers(*lengths)), joints, 3)).astype(np.float32) for _ in range(n)]
