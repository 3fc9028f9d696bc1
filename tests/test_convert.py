"""Weight conversion: timm ViT -> transformers ViT, and original MotionPatches checkpoints -> Hub folders.

timm tests (marked ``timm``) need timm, which needs torchvision and the torch it was built for; they run in the
side venv ``.venv-timm`` (see ``.ci/run``) and are skipped with the reason elsewhere. Every other test uses a
reference forward written here in plain torch from the layout's specification.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import random_motions
from torch import nn

from modeling_motionpatch import MotionPatchModel
from modeling_motionpatch.apps.motion_statistics import compute_statistics
from modeling_motionpatch.convert_original import convert_original_checkpoint, main
from modeling_motionpatch.timm_vit_keys import (
    convert_timm_vit_state_dict,
    hf_vit_layer_names,
    resample_position_embeddings,
)
from modeling_motionpatch.checkpoint_files import load_state_dict_file

TIMM_REASON = "timm is not importable here (it needs torchvision built for this torch); run in .venv-timm"
CAPTIONS = ["a person walks forward", "someone kicks with the left leg"]


def import_timm():
    return pytest.importorskip("timm", reason=TIMM_REASON)


# ---------------------------------------------------------------------------
# references written from the layout's specification
# ---------------------------------------------------------------------------
def random_timm_vit_state_dict(hidden=32, depth=2, mlp=64, grid=(14, 5), patch=16, seed=0, final="fc_norm"):
    """A timm VisionTransformer state dict (random), built from shapes only."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.05, offset=0.0):
        return torch.randn(*shape, generator=g) * scale + offset

    sd = {
        "cls_token": r(1, 1, hidden, scale=0.5),
        "pos_embed": r(1, 1 + grid[0] * grid[1], hidden, scale=0.5),
        "patch_embed.proj.weight": r(hidden, 3, patch, patch),
        "patch_embed.proj.bias": r(hidden, scale=0.1),
    }
    for i in range(depth):
        for norm in ("norm1", "norm2"):
            sd[f"blocks.{i}.{norm}.weight"] = r(hidden, scale=0.1, offset=1.0)
            sd[f"blocks.{i}.{norm}.bias"] = r(hidden, scale=0.1)
        for name, (out, inp) in {
            "attn.qkv": (3 * hidden, hidden), "attn.proj": (hidden, hidden), "mlp.fc1": (mlp, hidden),
            "mlp.fc2": (hidden, mlp),
        }.items():
            sd[f"blocks.{i}.{name}.weight"] = r(out, inp, scale=1 / math.sqrt(inp))
            sd[f"blocks.{i}.{name}.bias"] = r(out, scale=0.1)
    if final:
        sd[f"{final}.weight"] = r(hidden, scale=0.1, offset=1.0)
        sd[f"{final}.bias"] = r(hidden, scale=0.1)
    return sd


def reference_timm_vit_avg(sd, x, heads, eps=1e-6):
    """timm ViT forward with global_pool="avg": pre-norm blocks, fused qkv, no final norm, fc_norm(mean(patches))."""
    w = sd["patch_embed.proj.weight"]
    hidden, depth = w.shape[0], 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    t = F.conv2d(x, w, sd["patch_embed.proj.bias"], stride=tuple(w.shape[-2:])).flatten(2).transpose(1, 2)
    t = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), t], dim=1) + sd["pos_embed"]
    b, n, _ = t.shape
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(t, (hidden,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps)
        qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hidden // heads), dim=-1)
        t = t + F.linear(
            (attn @ v).transpose(1, 2).reshape(b, n, hidden), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"]
        )
        h = F.layer_norm(t, (hidden,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps)
        h = F.linear(
            F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
            sd[p + "mlp.fc2.weight"],
            sd[p + "mlp.fc2.bias"],
        )
        t = t + h
    return F.layer_norm(t[:, 1:].mean(dim=1), (hidden,), sd["fc_norm.weight"], sd["fc_norm.bias"], eps)


class ReferenceHead(nn.Module):
    """The original projection head: p = projection(x); y = fc(gelu(p)); y = dropout(y) + p; layer_norm(y)."""

    def __init__(self, inp, out):
        super().__init__()
        self.projection, self.fc, self.layer_norm = nn.Linear(inp, out), nn.Linear(out, out), nn.LayerNorm(out)

    def forward(self, x):
        p = self.projection(x)
        return self.layer_norm(self.fc(F.gelu(p)) + p)


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial random weights everywhere (LayerNorms included), so that a swapped mapping shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.ndim == 1 and "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif p.ndim >= 2 and "embed" not in name and "token" not in name:
                p.copy_(noise / math.sqrt(p.shape[-1]))
            else:
                p.copy_(0.1 * noise if p.ndim == 1 else 0.5 * noise)
    return module.eval()


def original_parts(motion_sd, text_hidden=128, text_heads=2, vocab=64, projection_dim=24, seed=1):
    """Text encoder, heads and the original-layout state dict around a timm-layout motion state dict."""
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(seed)
    text_config = DistilBertConfig(
        vocab_size=vocab, dim=text_hidden, n_layers=2, n_heads=text_heads, hidden_dim=2 * text_hidden,
        max_position_embeddings=64,
    )
    text = randomize_(DistilBertModel(text_config), seed)
    heads = {
        "motion_projection": randomize_(ReferenceHead(motion_sd["cls_token"].shape[-1], projection_dim), seed + 1),
        "text_projection": randomize_(ReferenceHead(text_hidden, projection_dim), seed + 2),
    }
    sd = {f"motion_encoder.model.{k}": v for k, v in motion_sd.items()}
    sd.update({f"text_encoder.text_model.{k}": v for k, v in text.state_dict().items()})
    for name, head in heads.items():
        sd.update({f"{name}.{k}": v for k, v in head.state_dict().items()})
    sd["logit_scale"] = torch.tensor(math.log(1 / 0.07), dtype=torch.float64)
    return sd, text, heads, text_config


@pytest.fixture(scope="module")
def stats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats")
    rng = np.random.default_rng(0)
    for name, joints in (("humanml3d", 22), ("kit", 21)):
        np.save(folder / f"{name}_mean.npy", rng.normal(size=(joints, 3)).astype(np.float32))
        np.save(folder / f"{name}_std.npy", rng.uniform(0.5, 1.5, size=(joints, 3)).astype(np.float32))
    return folder


def run_main(args) -> int:
    return main([str(a) for a in args])


def assert_no_leftovers(parent: Path, output: Path):
    assert not output.exists(), f"{output} was left behind"
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{output.name}.")], "temporary folder left"


# ---------------------------------------------------------------------------
# timm -> transformers
# ---------------------------------------------------------------------------
def test_transformers_vit_names_are_probed_from_the_installed_version():
    names = hf_vit_layer_names()
    from transformers import ViTConfig, ViTModel

    keys = ViTModel(ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
                              image_size=16), add_pooling_layer=False).state_dict()
    prefix = names["prefix"].format(i=0)
    for role in ("norm1", "query", "key", "value", "out", "norm2", "fc1", "fc2"):
        assert f"{prefix}{names[role]}.weight" in keys


def test_converted_state_dict_matches_a_plain_torch_reference():
    from transformers import ViTModel

    sd = random_timm_vit_state_dict(hidden=32, depth=2, grid=(4, 5))
    conv = convert_timm_vit_state_dict(sd, image_size=(64, 80), num_attention_heads=2)
    assert conv.config.image_size == [64, 80] and conv.config.layer_norm_eps == 1e-6 and conv.config.qkv_bias
    assert conv.final_norm_kind == "fc_norm" and conv.resampled_from is None
    vit = ViTModel(conv.config, add_pooling_layer=False).eval()
    result = vit.load_state_dict(conv.state_dict, strict=False)
    assert not result.unexpected_keys and sorted(result.missing_keys) == ["layernorm.bias", "layernorm.weight"]
    vit.layernorm = nn.Identity()
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        tokens = vit(pixel_values=x).last_hidden_state
        got = F.layer_norm(tokens[:, 1:].mean(1), (32,), conv.final_norm["weight"], conv.final_norm["bias"], 1e-6)
        diff = (got - reference_timm_vit_avg(sd, x, heads=2)).abs().max().item()
    print(f"plain-torch reference max abs diff: {diff:.3g}")
    assert diff < 1e-5


def test_unsupported_timm_features_and_shapes_are_refused_with_the_keys():
    sd = random_timm_vit_state_dict(grid=(4, 5))
    sd["blocks.0.ls1.gamma"] = torch.ones(32)
    sd["reg_token"] = torch.zeros(1, 4, 32)
    with pytest.raises(ValueError, match=r"blocks\.0\.ls1\.gamma.*reg_token|reg_token.*ls1"):
        convert_timm_vit_state_dict(sd, image_size=(64, 80), num_attention_heads=2)
    sd = random_timm_vit_state_dict(grid=(4, 4))
    sd["pos_embed"] = sd["pos_embed"][:, 1:]  # no_embed_class: 16 positions, no class position
    with pytest.raises(ValueError, match="no_embed_class"):
        convert_timm_vit_state_dict(sd, num_attention_heads=2)
    with pytest.raises(ValueError, match="num_attention_heads"):
        convert_timm_vit_state_dict(random_timm_vit_state_dict(hidden=48), image_size=(224, 80))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        convert_timm_vit_state_dict(random_timm_vit_state_dict(), image_size=(224, 70), num_attention_heads=2)
    sd = random_timm_vit_state_dict(grid=(4, 5))
    del sd["blocks.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match=r"blocks\.1\.mlp\.fc2\.bias"):
        convert_timm_vit_state_dict(sd, image_size=(64, 80), num_attention_heads=2)


def test_resampling_keeps_the_class_position_and_leaves_a_matching_grid_untouched():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    same = resample_position_embeddings(pos, (14, 14))
    assert same is pos
    out = resample_position_embeddings(pos, (14, 5))
    assert out.shape == (1, 71, 8) and torch.equal(out[:, 0], pos[:, 0])
    image = pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(image, size=(14, 5), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(out[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 70, 8), rtol=0, atol=0)


@pytest.mark.timm
def test_resampling_matches_timm():
    timm = import_timm()
    from timm.layers import resample_abs_pos_embed

    pos = torch.randn(1, 1 + 14 * 14, 16)
    expected = resample_abs_pos_embed(pos, new_size=[14, 5], num_prefix_tokens=1)
    assert torch.equal(resample_position_embeddings(pos, (14, 5)), expected), timm.__version__


def timm_parity(hidden, depth, heads, batch=2):
    import_timm()
    from timm.models.vision_transformer import VisionTransformer
    from transformers import ViTModel

    torch.manual_seed(0)
    ref = VisionTransformer(
        img_size=(224, 80), patch_size=16, embed_dim=hidden, depth=depth, num_heads=heads, num_classes=0,
        global_pool="avg",
    )
    randomize_(ref, seed=0)
    conv = convert_timm_vit_state_dict(ref.state_dict(), image_size=(224, 80), num_attention_heads=heads)
    vit = ViTModel(conv.config, add_pooling_layer=False).eval()
    vit.load_state_dict(conv.state_dict, strict=False)
    vit.layernorm = nn.Identity()
    x = torch.randn(batch, 3, 224, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref.forward_head(ref.forward_features(x), pre_logits=True)
        tokens = vit(pixel_values=x).last_hidden_state
        got = F.layer_norm(tokens[:, 1:].mean(1), (hidden,), conv.final_norm["weight"], conv.final_norm["bias"], 1e-6)
    diff = (got - expected).abs().max().item()
    print(f"timm parity hidden={hidden} depth={depth}: max abs diff {diff:.3g}")
    return diff


@pytest.mark.timm
def test_timm_parity_tiny():
    assert timm_parity(hidden=64, depth=2, heads=4) < 1e-5


@pytest.mark.timm
def test_timm_parity_vit_b16_shape():
    assert timm_parity(hidden=768, depth=12, heads=12) < 1e-5


# ---------------------------------------------------------------------------
# original checkpoints
# ---------------------------------------------------------------------------
def reference_embeddings(motion_fn, text, heads, motion_values, input_ids, attention_mask):
    """The original model's embeddings: ViT -> fc_norm(mean) -> head; DistilBERT token 0 -> head; L2."""
    with torch.no_grad():
        motion = heads["motion_projection"](motion_fn(motion_values))
        hidden = text(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        text_embeds = heads["text_projection"](hidden)
    return F.normalize(motion, dim=-1), F.normalize(text_embeds, dim=-1)


@pytest.mark.parametrize("backend", ["torch", pytest.param("timm", marks=pytest.mark.timm)])
def test_original_checkpoint_parity_through_the_console_script(backend, tmp_path, stats, tokenizer_dir, capsys):
    from transformers import AutoModel, AutoProcessor

    if backend == "timm":
        import_timm()
        from timm.models.vision_transformer import VisionTransformer

        vit = randomize_(
            VisionTransformer(img_size=(224, 80), patch_size=16, embed_dim=128, depth=2, num_heads=2, num_classes=0,
                              global_pool="avg"), seed=5)
        motion_sd = dict(vit.state_dict())

        def motion_fn(x):
            return vit.forward_head(vit.forward_features(x), pre_logits=True)
    else:
        motion_sd = random_timm_vit_state_dict(hidden=128, depth=2, mlp=256, grid=(14, 5), seed=5)

        def motion_fn(x):
            return reference_timm_vit_avg(motion_sd, x, heads=2)

    sd, text, heads, _ = original_parts(motion_sd)
    ckpt = tmp_path / "best_model.pt"
    torch.save({"epoch": 7, "state_dict": sd}, ckpt)
    out = tmp_path / "converted"
    code = run_main(convert_args(ckpt, out, stats, tokenizer_dir))
    assert code == 0, capsys.readouterr().err
    for name in (
        "config.json",
        "model.safetensors",
        "README.md",
        "processor_config.json",
        "tokenizer.json",
        "modeling_motionpatch.py",
    ):
        assert (out / name).exists(), name
    assert not (out / "pretrained_towers.py").exists() and not (out / "convert_original.py").exists()

    model = AutoModel.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    assert isinstance(model, MotionPatchModel)
    cfg = model.config
    assert (cfg.motion_pooling, cfg.text_pooling, cfg.projection_dropout, cfg.mask_motion_padding) == (
        "mean",
        "cls",
        0.5,
        False,
    )
    assert cfg.motion_config.layer_norm_eps == 1e-6 and cfg.motion_config.image_size == [224, 80]
    assert cfg.logit_scale_init_value == pytest.approx(math.log(1 / 0.07), abs=1e-12)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07), abs=1e-6) and not cfg.learnable_logit_scale

    fe = processor.feature_extractor
    assert fe.skeleton["name"] == "humanml3d" and fe.max_frames == 224 and fe.fps == 20.0 and fe.input_fps is None
    np.testing.assert_array_equal(fe.mean, np.load(stats / "humanml3d_mean.npy"))
    np.testing.assert_array_equal(fe.std, np.load(stats / "humanml3d_std.npy"))

    inputs = processor(text=CAPTIONS, motions=random_motions(2, seed=3), return_tensors="pt")
    exp_motion, exp_text = reference_embeddings(
        motion_fn, text, heads, inputs["motion_values"], inputs["input_ids"], inputs["attention_mask"]
    )
    with torch.no_grad():
        outputs = model(**inputs)
        motion = model.get_motion_features(inputs["motion_values"], normalize=True).pooler_output
    diffs = {
        "motion": (outputs.motion_embeds - exp_motion).abs().max().item(),
        "text": (outputs.text_embeds - exp_text).abs().max().item(),
        "motion(get_motion_features)": (motion - exp_motion).abs().max().item(),
    }
    print(f"original-checkpoint parity [{backend}]:", {k: f"{v:.3g}" for k, v in diffs.items()})
    assert max(diffs.values()) < 1e-5, diffs

    card = (out / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card and "CC BY-NC 4.0" in card and "${" not in card
    assert "Yu, Qing and Tanaka, Mikihiro and Fujiwara, Kent" in card
    assert "humanml3d_mean.npy" in card and "humanml3d_std.npy" in card and "best_model.pt" in card


def test_kit_preset_flattened_statistics_and_a_text_config(tmp_path, tokenizer_dir):
    from transformers import AutoProcessor, DistilBertConfig

    motion_sd = random_timm_vit_state_dict(hidden=64, depth=1, mlp=128, grid=(14, 5), seed=2)
    sd, text, heads, text_config = original_parts(motion_sd, text_hidden=64, text_heads=4)
    text_config.save_pretrained(tmp_path / "text_config")
    torch.save(sd, tmp_path / "kit.pt")  # a bare state dict
    rng = np.random.default_rng(1)
    np.save(tmp_path / "mean.npy", rng.normal(size=63).astype(np.float32))  # flattened (21 * 3,)
    np.save(tmp_path / "std.npy", rng.uniform(0.5, 2, size=63).astype(np.float32))
    out = convert_original_checkpoint(
        tmp_path / "kit.pt", tmp_path / "kit", dataset="kit", mean=tmp_path / "mean.npy", std=tmp_path / "std.npy",
        tokenizer=tokenizer_dir, text_config=tmp_path / "text_config", motion_num_attention_heads=4,
    )
    model = MotionPatchModel.from_pretrained(out).eval()
    assert model.config.projection_dropout == 0.0 and model.config.text_config.n_heads == 4
    assert model.config.motion_config.num_attention_heads == 4
    fe = AutoProcessor.from_pretrained(out).feature_extractor
    assert (fe.skeleton["name"], fe.input_fps, fe.fps, fe.fps_mode) == ("kit", 12.5, 20.0, "nearest")
    np.testing.assert_array_equal(fe.mean, np.load(tmp_path / "mean.npy").reshape(21, 3))
    x = torch.randn(2, 3, 224, 80, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[2, 10, 11, 3], [2, 12, 3, 0]])
    mask = (ids != 0).long()
    exp_motion, exp_text = reference_embeddings(
        lambda v: reference_timm_vit_avg(motion_sd, v, heads=4), text, heads, x, ids, mask
    )
    with torch.no_grad():
        assert (model.get_motion_features(x, normalize=True).pooler_output - exp_motion).abs().max().item() < 1e-5
        assert (model.get_text_features(ids, mask, normalize=True).pooler_output - exp_text).abs().max().item() < 1e-5
    assert "12.5" in (out / "README.md").read_text()
    assert isinstance(model.config.text_config, DistilBertConfig)


def test_statistics_from_a_prepared_dataset_folder(tmp_path, tokenizer_dir):
    datasets = pytest.importorskip("datasets")

    motions = random_motions(3, seed=4)
    features = datasets.Features({
        "motion": datasets.Array3D(shape=(None, 22, 3), dtype="float32"), "skeleton": datasets.Value("string"),
    })
    ds = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"motion": motions, "skeleton": ["humanml3d"] * 3}, features=features)})
    ds.save_to_disk(str(tmp_path / "prepared"))
    sd, *_ = original_parts(
        random_timm_vit_state_dict(hidden=64, depth=1, grid=(14, 5)), text_hidden=64, text_heads=1
    )
    torch.save({"state_dict": sd}, tmp_path / "ckpt.pt")
    out = convert_original_checkpoint(
        tmp_path / "ckpt.pt", tmp_path / "out", dataset="humanml3d", stats_from=tmp_path / "prepared",
        tokenizer=tokenizer_dir, motion_num_attention_heads=1, verify=False,
    )
    from transformers import AutoFeatureExtractor

    fe = AutoFeatureExtractor.from_pretrained(out)
    mean, std = compute_statistics(motions)
    np.testing.assert_allclose(fe.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(fe.std, std, rtol=1e-6)
    assert "`train` split (3 motions" in (out / "README.md").read_text()

    # statistics.json saved with the prepared dataset is used when it covers the split
    from modeling_motionpatch.apps import motion_statistics as statistics

    saved = statistics.MotionStatistics(mean + 1.0, std * 2.0, splits=["train"], num_motions=3, num_frames=9)
    statistics.save_statistics(saved, tmp_path / "prepared")
    out = convert_original_checkpoint(
        tmp_path / "ckpt.pt", tmp_path / "out2", dataset="humanml3d", stats_from=tmp_path / "prepared",
        tokenizer=tokenizer_dir, motion_num_attention_heads=1, verify=False,
    )
    fe = AutoFeatureExtractor.from_pretrained(out)
    np.testing.assert_array_equal(fe.mean, (mean + 1.0).astype(np.float32))
    assert "statistics.json` saved with the prepared dataset" in (out / "README.md").read_text()


# ---------------------------------------------------------------------------
# bad inputs: clear errors, nothing half-written
# ---------------------------------------------------------------------------
@pytest.fixture
def small_checkpoint(tmp_path):
    sd, *_ = original_parts(
        random_timm_vit_state_dict(hidden=64, depth=1, grid=(14, 5)), text_hidden=64, text_heads=1
    )
    return sd


def convert_args(ckpt, out, stats, tokenizer_dir, dataset="humanml3d", mean=None, std=None):
    return ["--checkpoint", ckpt, "--dataset", dataset, "--mean", mean or stats / f"{dataset}_mean.npy",
            "--std", std or stats / f"{dataset}_std.npy", "--tokenizer", tokenizer_dir, "--output", out]


def test_missing_and_unexpected_keys_are_listed(tmp_path, small_checkpoint, stats, tokenizer_dir, capsys):
    sd = dict(small_checkpoint)
    del sd["motion_encoder.model.blocks.0.attn.qkv.bias"], sd["text_projection.fc.weight"]
    sd["motion_encoder.model.norm.weight"] = torch.ones(64)
    sd["extra.thing"] = torch.zeros(1)
    torch.save({"state_dict": sd}, tmp_path / "bad.pt")
    out = tmp_path / "out"
    assert run_main(convert_args(tmp_path / "bad.pt", out, stats, tokenizer_dir)) == 2
    err = capsys.readouterr().err
    for key in ("motion_encoder.model.blocks.0.attn.qkv.bias", "text_projection.fc.weight",
                "motion_encoder.model.norm.weight", "extra.thing"):
        assert key in err, (key, err)
    assert "Missing keys (2)" in err and "Unexpected keys (2)" in err
    assert_no_leftovers(tmp_path, out)


def test_a_pickle_that_needs_code_is_refused_and_not_executed(tmp_path, stats, tokenizer_dir, capsys):
    marker = tmp_path / "EXECUTED"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": {"logit_scale": torch.tensor(1.0)}, "payload": Payload()}, f, protocol=2)
    out = tmp_path / "out"
    assert run_main(convert_args(tmp_path / "evil.pt", out, stats, tokenizer_dir)) == 2
    err = capsys.readouterr().err
    assert "Refused" in err and "NOT executed" in err
    assert not marker.exists(), "the pickle's code ran"
    with pytest.raises(ValueError, match="NOT executed"):
        load_state_dict_file(tmp_path / "evil.pt")
    torch.save({"state_dict": {}, "payload": Payload()}, tmp_path / "evil_zip.pt")  # torch's zip format too
    with pytest.raises(ValueError, match="NOT executed"):
        load_state_dict_file(tmp_path / "evil_zip.pt")
    assert not marker.exists()
    (tmp_path / "garbage.pt").write_text("not a checkpoint")
    assert run_main(convert_args(tmp_path / "garbage.pt", out, stats, tokenizer_dir)) == 2
    assert "torch.save" in capsys.readouterr().err
    assert_no_leftovers(tmp_path, out)


def test_statistics_of_the_wrong_shape(tmp_path, small_checkpoint, stats, tokenizer_dir, capsys):
    torch.save(small_checkpoint, tmp_path / "ckpt.pt")
    np.save(tmp_path / "features_mean.npy", np.zeros(263, dtype=np.float32))
    out = tmp_path / "out"
    args = convert_args(tmp_path / "ckpt.pt", out, stats, tokenizer_dir, mean=tmp_path / "features_mean.npy")
    assert run_main(args) == 2
    err = capsys.readouterr().err
    assert "(263,)" in err and "expected (22, 3) or (66,)" in err and "Mean_raw.npy" in err
    # KIT statistics (21 joints) given for a HumanML3D checkpoint
    args = convert_args(
        tmp_path / "ckpt.pt", out, stats, tokenizer_dir, mean=stats / "kit_mean.npy", std=stats / "kit_std.npy"
    )
    assert run_main(args) == 2
    assert "(21, 3)" in capsys.readouterr().err
    assert_no_leftovers(tmp_path, out)


def test_text_tower_hidden_size_mismatch(tmp_path, small_checkpoint, stats, tokenizer_dir, capsys):
    from transformers import DistilBertConfig

    DistilBertConfig(vocab_size=64, dim=128, n_heads=2, n_layers=2).save_pretrained(tmp_path / "wrong_text")
    torch.save(small_checkpoint, tmp_path / "ckpt.pt")
    out = tmp_path / "out"
    args = convert_args(tmp_path / "ckpt.pt", out, stats, tokenizer_dir) + ["--text-config", tmp_path / "wrong_text"]
    assert run_main(args) == 2
    err = capsys.readouterr().err
    assert "hidden size (128" in err and "(64:" in err, err
    # a checkpoint whose text head does not fit its text encoder
    sd = dict(small_checkpoint)
    sd["text_projection.projection.weight"] = torch.zeros(24, 32)
    torch.save(sd, tmp_path / "ckpt2.pt")
    assert run_main(convert_args(tmp_path / "ckpt2.pt", out, stats, tokenizer_dir)) == 2
    assert "text_projection.projection.weight is (24, 32)" in capsys.readouterr().err
    assert_no_leftovers(tmp_path, out)


def test_failure_while_writing_leaves_nothing_and_an_existing_output_is_kept(
    tmp_path, small_checkpoint, stats, tokenizer_dir, monkeypatch, capsys
):
    torch.save(small_checkpoint, tmp_path / "ckpt.pt")
    out = tmp_path / "out"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("modeling_motionpatch.convert_original.MotionPatchProcessor.save_pretrained", boom)
    with pytest.raises(OSError, match="disk full"):
        main([str(a) for a in convert_args(tmp_path / "ckpt.pt", out, stats, tokenizer_dir)])
    assert_no_leftovers(tmp_path, out)
    monkeypatch.undo()

    out.mkdir()
    (out / "keep.txt").write_text("previous")
    assert run_main(convert_args(tmp_path / "ckpt.pt", out, stats, tokenizer_dir)) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").exists()
    args = convert_args(tmp_path / "ckpt.pt", out, stats, tokenizer_dir) + ["--overwrite", "--no-verify"]
    assert run_main(args) == 0
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")) == []


def test_push_to_hub_uploads_the_written_folder(tmp_path, small_checkpoint, stats, tokenizer_dir, monkeypatch):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message=""):
            calls.append(("upload_folder", repo_id, sorted(os.listdir(folder_path))))

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    torch.save(small_checkpoint, tmp_path / "ckpt.pt")
    args = convert_args(tmp_path / "ckpt.pt", tmp_path / "out", stats, tokenizer_dir)
    assert run_main(args + ["--push-to-hub", "me/motionpatch-h3d", "--private", "--no-verify"]) == 0
    assert calls[0] == ("create_repo", "me/motionpatch-h3d", True, True)
    assert calls[1][0] == "upload_folder" and "model.safetensors" in calls[1][2] and "README.md" in calls[1][2]
    assert "me/motionpatch-h3d" in (tmp_path / "out" / "README.md").read_text()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "motionpatch"
