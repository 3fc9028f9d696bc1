"""``motionpatch-evaluate`` on 2 CPU processes gives the JSON of 1 process.

The 2-process run is what a user types: ``torchrun --standalone --nproc_per_node 2 -m
motionpatch_training.evaluate_retrieval ...`` (gloo on CPU; ``--standalone`` picks a free port). 37 motions in
batches of 8 make 5 batches, so the second process gets a batch of repeated samples that ``gather_for_metrics``
must drop. (``accelerate launch`` with a MULTI_CPU config starts a single process on one machine in accelerate
1.15, and ``accelerate.debug_launcher`` forks, which deadlocks in OpenMP once the test process has run torch.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import WORDS, random_poses, tiny_config

N = 37
VOLATILE = ("date", "seconds", "environment")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer_dir):
    import datasets
    from motionpatch_processing.io import save_prepared
    from motionpatch_processing.schema import motion_features
    from transformers import AutoTokenizer

    from modeling_motionpatch import (
        MotionPatchFeatureExtractor,
        MotionPatchModel,
        MotionPatchProcessor,
    )

    root = tmp_path_factory.mktemp("distributed")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    MotionPatchModel(tiny_config(vocab_size=len(tok))).save_pretrained(root / "model")
    MotionPatchProcessor(MotionPatchFeatureExtractor("humanml3d", max_frames=64), tok).save_pretrained(root / "model")
    rng = np.random.default_rng(1)
    words = sorted(set(WORDS))
    captions = [[" ".join(rng.choice(words, size=5))] for _ in range(N)]
    captions[5] = list(captions[4])  # one repeated caption
    rows = {
        "id": [f"m{i}" for i in range(N)],
        "motion": [random_poses(int(rng.integers(20, 90)), rng) for _ in range(N)],
        "fps": [20.0] * N, "skeleton": ["humanml3d"] * N, "captions": captions, "labels": [[]] * N,
        "source": ["test"] * N, "mirrored": [False] * N,
    }
    test = datasets.Dataset.from_dict(rows, features=motion_features(22))
    save_prepared(datasets.DatasetDict({"test": test}), root / "data", "humanml3d")
    return root


def test_two_cpu_processes_give_the_same_json(folders, tmp_path):
    from motionpatch_training.evaluate_retrieval import main

    args = ["--model", str(folders / "model"), "--dataset", str(folders / "data"), "--protocols",
            "all,small_batches,strict", "--batch-size", "8", "--cpu"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert main(args + ["--output", str(one)]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "motionpatch_training.evaluate_retrieval", *args, "--output", str(two)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path),
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("| all | 37 |") == 1  # only the main process prints
    r1, r2 = json.loads(one.read_text()), json.loads(two.read_text())
    assert r1["environment"]["num_processes"] == 1 and r2["environment"]["num_processes"] == 2
    assert r2["counts"]["evaluated"] == N
    for key in VOLATILE:
        r1.pop(key), r2.pop(key)
    assert r1 == r2
