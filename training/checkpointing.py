"""Training-state checkpoints: atomic writes, rotation, and resume.

A checkpoint is an ``accelerator.save_state`` folder (model, optimizer, scheduler, every process's RNG states,
the :class:`TrainerState` registered with ``register_for_checkpointing``) plus a readable
``trainer_state.json``. It is written under a temporary name (``checkpoints/.tmp-checkpoint-{step}``) and renamed
to ``checkpoints/checkpoint-{step}`` only when complete, so a run killed while saving never leaves a
half-written checkpoint that ``--resume_from_checkpoint latest`` could pick. Only the last ``save_total_limit``
complete checkpoints are kept; leftovers of interrupted saves are removed at start-up.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
TMP_PREFIX = ".tmp-"
STATE_FILE = "trainer_state.json"
_NAME_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


@dataclass
class TrainerState:
    """Loop position and model-selection state; saved inside every checkpoint.

    ``epoch`` is the epoch in progress and ``batches_in_epoch`` the micro-batches of it already consumed, so a
    resumed run skips exactly those (``accelerator.skip_first_batches``).
    """

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    samples_seen: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_epoch: int | None = None
    last_checkpoint: str | None = None
    best_results: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            if hasattr(self, k):
                setattr(self, k, v)


def checkpoint_root(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / CHECKPOINT_DIR


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints, oldest first (by step)."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def clean_partial_checkpoints(output_dir: str | os.PathLike) -> list[str]:
    """Remove ``.tmp-*`` folders left by a run killed while saving; returns their names."""
    root = checkpoint_root(output_dir)
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
    return removed


def resolve_resume_path(value: str | None, output_dir: str | os.PathLike) -> Path | None:
    """``None`` -> no resume; ``"latest"`` -> the newest complete checkpoint of ``output_dir``; else a folder."""
    if not value:
        return None
    if value == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise ValueError(
                f"--resume_from_checkpoint latest: no checkpoint in {checkpoint_root(output_dir)} (a checkpoint is "
                "written at every epoch end and every --checkpointing_steps steps). Start without the flag."
            )
        return found[-1]
    path = Path(value).expanduser()
    if not path.exists():
        raise ValueError(
            f"--resume_from_checkpoint {value!r}: the path does not exist. Pass 'latest' or a folder such as "
            f"{checkpoint_root(output_dir) / (CHECKPOINT_PREFIX + '100')}."
        )
    if not (path / STATE_FILE).is_file():
        raise ValueError(
            f"--resume_from_checkpoint {value!r}: {path} is not a training checkpoint (no {STATE_FILE}); checkpoints "
            f"are the {CHECKPOINT_PREFIX}N folders under {CHECKPOINT_DIR}/."
        )
    return path


def save_checkpoint(accelerator, state: TrainerState, output_dir: str | os.PathLike, total_limit: int) -> Path:
    """Save the full training state atomically and rotate old checkpoints; returns the final folder."""
    root = checkpoint_root(output_dir)
    name = f"{CHECKPOINT_PREFIX}{state.global_step}"
    final = root / name
    tmp = root / f"{TMP_PREFIX}{name}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        if final.exists():  # same step saved twice (a step checkpoint that is also an epoch end): replace it
            shutil.rmtree(final)
    accelerator.wait_for_everyone()
    state.last_checkpoint = str(final)
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state.state_dict(), indent=1))
        _fsync_dir(tmp)
        os.replace(tmp, final)
        _fsync_dir(root)
        for old in list_checkpoints(output_dir)[:-total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "CHECKPOINT_DIR",
    "TrainerState",
    "checkpoint_root",
    "clean_partial_checkpoints",
    "list_checkpoints",
    "resolve_resume_path",
    "save_checkpoint",
]
