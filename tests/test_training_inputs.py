"""motionpatch-train: arguments and configs, learning-rate groups, freezing, data determinism, clear errors on bad
input (unknown dataset / skeleton, no captions, batch larger than the data, missing resume path, NaN loss), and
``--push_to_hub`` with huggingface_hub replaced at its network boundary. Runs in-process on tiny CPU models."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import random_poses, tiny_config  # noqa: E402
from training_helpers import fresh_accelerate_state, text_dir, tiny_args  # noqa: E402, F401  (fixtures)

from motionpatch_training.arguments import CONFIG_DIR, TrainingArguments, parse_args  # noqa: E402



@pytest.fixture(scope="module")
def pretrained_text_dir(tmp_path_factory, text_dir):
    """A tiny DistilBERT with saved weights (a 'pretrained' text tower)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = tmp_path_factory.mktemp("pretrained_text")
    torch.manual_seed(3)
    AutoModel.from_config(AutoConfig.from_pretrained(text_dir)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(text_dir).save_pretrained(folder)
    return folder


def _train(argv):
    from motionpatch_training.train import train

    return train(*parse_args(argv))


# ---------------------------------------------------------------------------------------------------------------------
# arguments and configs
# ---------------------------------------------------------------------------------------------------------------------
def test_yaml_config_with_cli_overrides(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("dataset: synthetic\nlearning_rate_motion: 3.0e-4\nper_device_train_batch_size: 16\n"
                   "freeze_text_tower: true\neval_protocols: [all, small_batches]\n")
    model_args, data_args, training_args = parse_args([str(cfg), "--per_device_train_batch_size", "4"])
    assert training_args.learning_rate_motion == pytest.approx(3e-4)
    assert training_args.per_device_train_batch_size == 4  # the flag wins over the file
    assert model_args.freeze_text_tower is True and data_args.eval_protocols == ["all", "small_batches"]
    cfg_json = tmp_path / "run.json"
    cfg_json.write_text(json.dumps({"dataset": "synthetic", "num_train_epochs": 3}))
    assert parse_args([str(cfg_json)])[2].num_train_epochs == 3


@pytest.mark.parametrize("name", ["demo", "humanml3d", "kit", "kit_from_humanml3d", "bandai-namco", "bandai-namco-dinov2"])
def test_shipped_configs_parse(name):
    model_args, data_args, training_args = parse_args([name])
    assert (CONFIG_DIR / f"{name}.yaml").is_file()
    if name in ("humanml3d", "kit"):  # the paper's settings
        assert training_args.per_device_train_batch_size == 128 and training_args.num_train_epochs == 50
        assert data_args.max_frames == 224 and model_args.projection_dim == 256 and model_args.temperature == 0.07
        assert not model_args.learnable_temperature
        assert model_args.motion_model_name_or_path == "timm/vit_base_patch16_224.augreg_in21k"
        assert model_args.text_model_name_or_path == "distilbert-base-uncased"
    if name == "bandai-namco-dinov2":  # DINOv2's 14 x 14 patches: 14-point parts, rows of 14 frames
        assert model_args.motion_model_name_or_path == "dinov2-small" and model_args.points_per_part == 14
        assert data_args.max_frames % 14 == 0 and model_args.motion_patch_size is None
    if name == "humanml3d":
        assert model_args.projection_dropout == 0.5
        assert (training_args.learning_rate_motion, training_args.learning_rate_text,
                training_args.learning_rate_heads) == (1e-4, 1e-5, 1e-4)
    if name == "kit":
        assert model_args.projection_dropout == 0.0
        assert {training_args.learning_rate_motion, training_args.learning_rate_text,
                training_args.learning_rate_heads} == {1e-5}


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {}
    for path in sorted((CONFIG_DIR / "accelerate").glob("*.yaml")):
        kinds[path.stem] = str(load_config_from_file(str(path)).distributed_type)
    assert kinds["single_gpu"].endswith("NO") and kinds["multi_gpu"].endswith("MULTI_GPU")
    assert kinds["multi_node"].endswith("MULTI_GPU") and kinds["fsdp"].endswith("FSDP")
    assert kinds["deepspeed_zero2"].endswith("DEEPSPEED")


def test_unknown_config_keys_and_flags_are_errors(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: synthetic\nlearning_rate_motoin: 1.0e-4\n")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) 'learning_rate_motoin' \(did you mean 'learning_rate_motion'\?\)"):
        parse_args([str(cfg)])
    with pytest.raises(ValueError, match="did you mean --num_train_epochs"):
        parse_args(["--num_train_epoch", "3"])
    with pytest.raises(ValueError, match="does not exist"):
        parse_args(["no_such_config.yaml"])
    with pytest.raises(ValueError, match="eval_protocols"):
        parse_args(["--eval_protocols", "all", "nope"])


def test_help_prints(capsys):
    """``motionpatch-train --help`` formats every help string (argparse %-formats them: a bare '%' breaks it)."""
    with pytest.raises(SystemExit) as exc:
        parse_args(["--help"])
    assert exc.value.code == 0
    assert "--augment_crop_probability" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------------
# learning-rate groups and freezing
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("learnable", [False, True])
def test_every_trainable_parameter_is_in_exactly_one_group_with_its_rate(learnable):
    from modeling_motionpatch import MotionPatchModel
    from motionpatch_training.model_factory import build_optimizer, parameter_group_of

    model = MotionPatchModel(tiny_config(learnable_logit_scale=learnable))
    args = TrainingArguments(learning_rate_motion=3e-4, learning_rate_text=2e-5, learning_rate_heads=7e-4,
                             weight_decay=0.05)
    optimizer = build_optimizer(model, args)
    rate = {"motion_tower": 3e-4, "text_tower": 2e-5, "heads": 7e-4}
    owner: dict[int, dict] = {}
    for group in optimizer.param_groups:
        base = group["name"].replace("_no_decay", "")
        assert group["lr"] == rate[base]
        assert group["weight_decay"] == (0.0 if group["name"].endswith("_no_decay") else 0.05)
        for p in group["params"]:
            assert id(p) not in owner, "a parameter is in two groups"
            owner[id(p)] = group
    for name, p in model.named_parameters():
        if name == "logit_scale" and not learnable:
            assert id(p) not in owner and not p.requires_grad  # the fixed temperature is in no group
            continue
        assert id(p) in owner, f"{name} is in no group"
        assert owner[id(p)]["name"].replace("_no_decay", "") == parameter_group_of(name)
        if name.endswith("bias") or "norm" in name.lower():
            assert owner[id(p)]["name"].endswith("_no_decay")
    if learnable:
        assert owner[id(model.logit_scale)]["name"] == "heads_no_decay"


def test_frozen_tower_and_learnable_temperature(tmp_path, pretrained_text_dir):
    """Text tower frozen: its weights are exactly the pretrained ones after training; the motion tower moved; the
    learnable logit scale stays clamped to max_logit_scale."""
    out = tmp_path / "run"
    max_scale = math.log(1 / 0.07) + 0.01
    result = _train(tiny_args(pretrained_text_dir, out, text_from_scratch="false", freeze_text_tower="true",
                              max_steps=6, checkpointing_steps=3, learnable_temperature="true", max_logit_scale=max_scale,
                              learning_rate_heads=0.5, do_test="false"))
    trained = load_file(str(Path(result.output_dir) / "checkpoints" / "checkpoint-6" / "model.safetensors"))
    original = load_file(str(pretrained_text_dir / "model.safetensors"))
    for k, v in original.items():
        assert torch.equal(trained[f"text_model.{k}"], v), f"frozen weight text_model.{k} changed"
    earlier = load_file(str(Path(result.output_dir) / "checkpoints" / "checkpoint-3" / "model.safetensors"))
    motion_keys = [k for k in trained if k.startswith("motion_model.")]
    assert any(not torch.equal(earlier[k], trained[k]) for k in motion_keys)  # the unfrozen tower trains
    assert trained["logit_scale"].item() <= max_scale + 1e-7
    assert trained["logit_scale"].item() != pytest.approx(math.log(1 / 0.07), abs=1e-9)
    groups = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert "lr/text_tower" not in groups and "lr/motion_tower" in groups  # a frozen tower has no group


# ---------------------------------------------------------------------------------------------------------------------
# data determinism
# ---------------------------------------------------------------------------------------------------------------------
def test_captions_crops_and_mirroring_depend_only_on_seed_epoch_index():
    from modeling_motionpatch import get_skeleton
    from motionpatch_training.data import EpochSampler, MotionStore, MotionTextTrainDataset

    rng = np.random.default_rng(0)
    motions = [random_poses(int(n), rng) for n in rng.integers(20, 90, size=30)]
    captions = [[f"motion {i} caption {j} to the left" for j in range(4)] for i in range(30)]
    store = MotionStore.from_list(motions)
    assert all(np.array_equal(store[i], motions[i]) for i in range(30))
    ds = MotionTextTrainDataset(store, captions, seed=5, skeleton=get_skeleton("humanml3d"), mirror_probability=0.5)
    first = [ds[(i, 0)]["caption"] for i in range(30)]
    assert first == [ds[(i, 0)]["caption"] for i in reversed(range(30))][::-1]  # order-independent
    assert first != [ds[(i, 1)]["caption"] for i in range(30)]  # a new choice each epoch
    mirrored = [i for i in range(30) if "right" in ds[(i, 0)]["caption"]]
    assert 5 < len(mirrored) < 25
    i = mirrored[0]
    assert not np.array_equal(ds[(i, 0)]["motion"], motions[i])
    sampler = EpochSampler(30, seed=5)
    sampler.start_epoch(3)
    order = list(sampler)
    assert all(e == 3 for _, e in order) and sorted(i for i, _ in order) == list(range(30))
    assert order == list(sampler)
    sampler.start_epoch(4)
    assert order != list(sampler)


def test_motion_store_from_dataset_equals_numpy_format():
    from motionpatch_processing.synthetic import build_synthetic_dataset_dict
    from motionpatch_training.data import MotionStore

    ds = build_synthetic_dataset_dict(6, 0, 0, seed=1)["train"].select([4, 0, 2])
    store = MotionStore.from_dataset(ds)
    ref = ds.with_format("numpy", columns=["motion"])
    for i in range(3):
        assert np.array_equal(store[i], ref[i]["motion"])
    assert store.flat.dtype == np.float32 and store.flat.flags["C_CONTIGUOUS"]


# ---------------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------------
def test_unknown_dataset(tmp_path, text_dir):
    with pytest.raises(ValueError, match=r"unknown dataset 'no-such-dataset'.*synthetic.*bandai-namco"):
        _train(tiny_args(text_dir, tmp_path / "o", dataset="no-such-dataset"))
    with pytest.raises(ValueError, match="neither one of"):
        _train(tiny_args(text_dir, tmp_path / "o", dataset="./data/does-not-exist"))


def test_unknown_skeleton(tmp_path, text_dir):
    with pytest.raises(ValueError, match=r"skeleton 'smplx-99' is unknown.*registered skeletons.*humanml3d"):
        _train(tiny_args(text_dir, tmp_path / "o", skeleton="smplx-99"))
    with pytest.raises(ValueError, match=r"expects skeleton 'kit' \(21 joints\).*'humanml3d' \(22 joints\)"):
        _train(tiny_args(text_dir, tmp_path / "o", skeleton="kit"))


def test_dataset_without_captions(tmp_path, text_dir):
    from motionpatch_processing.io import save_prepared
    from motionpatch_processing.synthetic import build_synthetic_dataset_dict

    dd = build_synthetic_dataset_dict(12, 4, 4, seed=0)
    dd = dd.map(lambda row: {"captions": []})
    folder = save_prepared(dd, tmp_path / "nocaps", skeleton="humanml3d")
    with pytest.raises(ValueError, match=r"split 'train' has no captions: all 12 rows have an empty 'captions' list"):
        _train(tiny_args(text_dir, tmp_path / "o", dataset=str(folder)))


def test_batch_size_larger_than_dataset(tmp_path, text_dir):
    with pytest.raises(ValueError, match=r"batch size is larger than the dataset.*100 pairs per step.*48 captioned"):
        _train(tiny_args(text_dir, tmp_path / "o", per_device_train_batch_size=100))


def test_resume_path_that_does_not_exist(tmp_path, text_dir):
    with pytest.raises(ValueError, match=r"--resume_from_checkpoint '/no/such/checkpoint': the path does not exist"):
        _train(tiny_args(text_dir, tmp_path / "o", resume_from_checkpoint="/no/such/checkpoint"))
    with pytest.raises(ValueError, match="no checkpoint in"):
        _train(tiny_args(text_dir, tmp_path / "o", resume_from_checkpoint="latest"))
    (tmp_path / "notckpt").mkdir()
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        _train(tiny_args(text_dir, tmp_path / "o", resume_from_checkpoint=str(tmp_path / "notckpt")))


def test_fp16_on_cpu_is_refused(tmp_path, text_dir):
    with pytest.raises(ValueError, match="fp16' needs a CUDA GPU"):
        _train(tiny_args(text_dir, tmp_path / "o", mixed_precision="fp16", cpu="true"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, text_dir, monkeypatch):
    from motionpatch_training import losses
    from motionpatch_training.loop import NonFiniteLossError

    calls = {"n": 0}
    original = losses.ClipLoss.forward

    def poisoned(self, *args):
        calls["n"] += 1
        loss = original(self, *args)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(losses.ClipLoss, "forward", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"not finite .* optimizer step 4 .* last good checkpoint is .*checkpoint-2"):
        _train(tiny_args(text_dir, out, checkpointing_steps=2, max_steps=10))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2"]
    errors = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"error"' in line]
    assert errors and errors[0]["step"] == 3


def test_existing_checkpoints_need_resume_or_overwrite(tmp_path, text_dir):
    from motionpatch_training.checkpointing import list_checkpoints, resolve_resume_path

    out = tmp_path / "o"
    (out / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (out / "checkpoints" / ".tmp-checkpoint-5").mkdir()  # a save interrupted by a kill: never picked
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-3"]
    assert resolve_resume_path("latest", out).name == "checkpoint-3"
    with pytest.raises(ValueError, match="already holds checkpoints"):
        _train(tiny_args(text_dir, out))


def test_cli_prints_a_clear_error_and_exits_2(tmp_path, text_dir, capsys):
    from motionpatch_training.train import main

    assert main(tiny_args(text_dir, tmp_path / "o", dataset="nope")) == 2
    assert "motionpatch-train: error: unknown dataset 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# Hub upload (huggingface_hub replaced at its network boundary)
# ---------------------------------------------------------------------------------------------------------------------
def test_push_to_hub_uploads_the_best_folder(tmp_path, text_dir, monkeypatch):
    import huggingface_hub

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        calls.append(("upload_folder", repo_id, {"files": files, **kwargs}))
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/abc", commit_message="m", commit_description="",
            oid="abc", pr_url=None,
        )

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    result = _train(tiny_args(text_dir, tmp_path / "hub", max_steps=3, push_to_hub="someone/motionpatch-tiny",
                              private="true"))
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1] == "someone/motionpatch-tiny" and calls[0][2]["private"] is True
    files = calls[1][2]["files"]
    for name in ("README.md", "config.json", "model.safetensors", "processor_config.json", "test_results.json"):
        assert name in files
    assert result.pushed_to.endswith("/commit/abc")
    card = (Path(result.best_dir) / "README.md").read_text()
    assert "model_name: motionpatch-tiny" in card or "name: motionpatch-tiny" in card
