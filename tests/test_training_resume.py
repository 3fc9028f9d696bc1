"""Exact resume: k steps, a real SIGKILL, resume to 2k steps == 2k steps without interruption (bitwise on CPU).

Run A trains 16 optimizer steps in one go. Run B is the same command with a test-only environment variable that
makes it sleep right after the checkpoint of step 8 is written (mid-epoch: 6 batches per epoch); the test kills
it with SIGKILL, then resumes it with ``--resume_from_checkpoint latest`` up to step 16. Dropout (p=0.5 in the
heads, 0.1 in the text tower), on-the-fly mirroring, per-epoch captions, random crops and a DataLoader worker
process are all on, so every source of randomness must come back exactly. The final weights must be identical
(max abs diff 0): the model, optimizer and scheduler states and the RNG states are restored from the
checkpoint, and every data-side random choice is a function of (seed, epoch, index), not of a running RNG.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training_helpers import make_tiny_text_dir, run_training, subprocess_env, tiny_args, train_command  # noqa: E402

K = 8
TOTAL = 2 * K
MARKER = f"MOTIONPATCH_TEST_CHECKPOINT_WRITTEN {K}"


def _args(text_dir: Path, out: Path, **extra) -> list[str]:
    return tiny_args(
        text_dir, out, max_steps=TOTAL, checkpointing_steps=4, save_total_limit=2, mirror_probability=0.5,
        dataloader_num_workers=1, eval_protocols="all", **extra,
    )


def _train_records(out: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if r["type"] == "train"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tokenizer_dir):
    tmp = tmp_path_factory.mktemp("resume")
    text_dir = make_tiny_text_dir(tokenizer_dir, tmp / "text")
    a, b = tmp / "uninterrupted", tmp / "killed"
    # run A and the first part of run B side by side (one thread each)
    proc_a = subprocess.Popen(train_command(_args(text_dir, a)), env=subprocess_env(), cwd=str(REPO),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc_b = subprocess.Popen(train_command(_args(text_dir, b)), env=subprocess_env(MOTIONPATCH_TEST_HANG_AFTER_CHECKPOINT=str(K)),
                              cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    seen = []
    deadline = time.monotonic() + 300
    try:
        for line in proc_b.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if MARKER in line:
                break
            if time.monotonic() > deadline:
                break
        assert any(MARKER in s for s in seen), "run B never reached the checkpoint:\n" + "".join(seen[-40:])
        os.kill(proc_b.pid, signal.SIGKILL)  # a real kill, no cleanup code runs
        assert proc_b.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc_b.poll() is None:
            proc_b.kill()
    killed_checkpoints = sorted(p.name for p in (b / "checkpoints").iterdir())
    # the weights at the kill, read now: the resumed run's rotation (save_total_limit=2) deletes this checkpoint
    at_kill = load_file(str(b / "checkpoints" / f"checkpoint-{K}" / "model.safetensors"))
    resumed = run_training(_args(text_dir, b, resume_from_checkpoint="latest"))
    out_a, _ = proc_a.communicate(timeout=300)
    assert proc_a.returncode == 0, out_a[-3000:]
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    return a, b, killed_checkpoints, resumed.stdout, at_kill


def test_kill_left_only_complete_checkpoints(runs):
    _, _, killed_checkpoints, _, _ = runs
    # steps 4, 6 (epoch end) and 8 were written; the last 2 are kept, none half-written (.tmp-*)
    assert killed_checkpoints == ["checkpoint-6", f"checkpoint-{K}"]


def test_resume_continues_mid_epoch_at_the_exact_batch(runs):
    _, b, _, stdout, _ = runs
    assert f"resumed from {b / 'checkpoints' / f'checkpoint-{K}'}: step {K}, epoch 1, 2 batches into it" in stdout
    state = json.loads((b / "checkpoints" / f"checkpoint-{TOTAL}" / "trainer_state.json").read_text())
    assert state["global_step"] == TOTAL


def test_resumed_run_equals_uninterrupted_run_bitwise(runs):
    a, b, _, _, at_kill = runs
    wa = load_file(str(a / "checkpoints" / f"checkpoint-{TOTAL}" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / f"checkpoint-{TOTAL}" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    diff = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert diff == 0.0, f"max abs weight difference {diff:.3g}"
    # the training actually moved the weights, and every step's loss (from the resumed process for steps > K) matches
    assert at_kill.keys() == wb.keys() and max((at_kill[k] - wb[k]).abs().max().item() for k in wb) > 0
    la, lb = _train_records(a), _train_records(b)
    assert sorted(la) == sorted(lb) == list(range(1, TOTAL + 1))
    assert la == lb
    oa = torch.load(a / "checkpoints" / f"checkpoint-{TOTAL}" / "optimizer.bin", weights_only=False)
    ob = torch.load(b / "checkpoints" / f"checkpoint-{TOTAL}" / "optimizer.bin", weights_only=False)
    assert oa["state"].keys() == ob["state"].keys() and len(oa["state"]) > 0
    for sa, sb in zip(oa["state"].values(), ob["state"].values(), strict=True):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
