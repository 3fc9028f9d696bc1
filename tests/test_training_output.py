"""motionpatch-train's output folder: an earlier run is refused unless --overwrite_output_dir (which replaces it) or
--resume_from_checkpoint; a read-only folder or a full disk gives one line on stderr, exit status 1, and leaves
nothing half-written. Runs in-process on tiny CPU models; write failures are simulated (tests may run as root, for
whom chmod does not block writes)."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training_helpers import fresh_accelerate_state, text_dir, tiny_args  # noqa: E402, F401  (fixtures)

from motionpatch_training.train import main  # noqa: E402



def short(text_dir, out, **overrides):
    """A run of 2 optimizer steps, validated once (so that best/ is saved) and tested."""
    overrides = {"max_steps": 2, "num_train_epochs": 1, "synthetic_num_train": 16, **overrides}
    return tiny_args(text_dir, out, **overrides)


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("motionpatch-train: error:")]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("earlier", ["best", "log.jsonl", "summary.json", "checkpoints/checkpoint-4"])
def test_a_folder_with_an_earlier_run_is_refused(tmp_path, text_dir, capsys, earlier):
    out = tmp_path / "o"
    path = out / earlier
    if "." in earlier:
        path.parent.mkdir(parents=True)
        path.write_text("{}\n")
    else:
        path.mkdir(parents=True)
        (path / "trainer_state.json").write_text("{}")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(short(text_dir, out)) == 2
    line = one_error_line(capsys)
    assert f"{out} already holds" in line and earlier.split("/")[0] in line
    assert "--overwrite_output_dir" in line and "--resume_from_checkpoint latest" in line
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # untouched


def test_an_empty_or_foreign_folder_is_accepted_and_overwrite_replaces_an_earlier_run(tmp_path, text_dir, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # not a run output: kept
    (out / "best").mkdir()
    (out / "best" / "stale.txt").write_text("old run")
    (out / "checkpoints" / "checkpoint-999").mkdir(parents=True)  # would be picked by 'latest' / kept by rotation
    (out / "checkpoints" / "checkpoint-999" / "trainer_state.json").write_text("{}")
    (out / "log.jsonl").write_text('{"step": 999}\n')
    assert main(short(text_dir, out, overwrite_output_dir="true")) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "best" / "stale.txt").exists() and (out / "best" / "model.safetensors").exists()
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-2"]
    assert all(json.loads(line)["step"] != 999 for line in (out / "log.jsonl").read_text().splitlines())
    assert json.loads((out / "best" / "config.json").read_text())["skeleton"]["name"] == "humanml3d"
    assert not [p.name for p in out.rglob(".*")], "temporary files left"


def _deny_writes(monkeypatch, err: int):
    """Every new file opened for writing fails with ``err`` (what a read-only folder or a full disk does)."""
    import builtins
    import tempfile

    def failing(*args, **kwargs):
        raise OSError(err, os.strerror(err), str(args[0]) if args else None)

    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            failing(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda *a, dir=None, **k: failing(dir))
    monkeypatch.setattr(builtins, "open", open_)


@pytest.mark.parametrize("err, says", [(errno.EACCES, "permission denied"), (errno.ENOSPC, "the disk is full"),
                                       (errno.EROFS, "read-only")])
def test_an_unwritable_output_folder_fails_at_once_with_one_line(tmp_path, text_dir, capsys, monkeypatch, err, says):
    out = tmp_path / "o"
    out.mkdir()
    os.chmod(out, 0o555)
    try:
        if os.geteuid() == 0 or err != errno.EACCES:  # root ignores the mode bits: simulate the refusal
            _deny_writes(monkeypatch, err)
        assert main(short(text_dir, out)) == 1
    finally:
        monkeypatch.undo()
        os.chmod(out, 0o755)
    line = one_error_line(capsys)
    assert says in line and str(out) in line and "--output_dir" in line
    assert list(out.iterdir()) == []


def test_a_disk_full_while_saving_the_best_model_leaves_nothing_half_written(tmp_path, text_dir, capsys, monkeypatch):
    from modeling_motionpatch import MotionPatchModel

    real_save = MotionPatchModel.save_pretrained

    def save_then_fill_the_disk(self, folder, *args, **kwargs):
        real_save(self, folder, *args, **kwargs)  # part of the folder is written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(MotionPatchModel, "save_pretrained", save_then_fill_the_disk)
    out = tmp_path / "o"
    assert main(short(text_dir, out)) == 1
    line = one_error_line(capsys)
    assert "the disk is full" in line and "Free disk space" in line
    assert not (out / "best").exists()
    assert not [p.name for p in out.rglob(".*")], "half-written temporary folders left"
