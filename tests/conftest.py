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


def random_motions(n: int, joints: int = 22, seed: int = 0, lengths=(20, 90)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(*lengths)), joints, 3)).astype(np.float32) for _ in range(n)]
