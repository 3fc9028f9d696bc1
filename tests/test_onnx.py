"""ONNX export (`motionpatch-export`) and `MotionPatchOnnxModel`: parity with eager, dynamic shapes, int8."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

def random_motions(n: int, seed: int = 0, lengths=(20, 90)) -> list[np.ndarray]:
    """Gaussian arrays, far apart from one another, for a tiny model to memorise (the processors here skip the body
    frame and the skeleton check, which are for real bodies)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(*lengths)), 22, 3)).astype(np.float32) for _ in range(n)]


pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install 'motionpatch[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime: pip install 'motionpatch[onnx]'")

from modeling_motionpatch import MotionPatchModel
from modeling_motionpatch.apps.modeling_onnx import MotionPatchOnnxModel, projected_features
from modeling_motionpatch.apps.onnx_export import export_onnx, main, quantize_onnx

NUM_PAIRS = 24
# how many of the 2 x 24 training-pair ranks int8 may lose against fp32 (a rank flip between near-tied items)
INT8_MARGIN = 2
#: the tiny test model's int8 embeddings kept a cosine of at least 0.9937 (motion) / 0.9959 (text) with fp32 when measured
INT8_MIN_COSINE = 0.98
VERBS = ["walks", "runs", "jumps", "kicks", "waves", "turns", "sits down", "squats"]
MANNERS = ["slowly", "quickly", "backwards"]
CAPTIONS = [f"a person {v} {m}" for v, m in itertools.product(VERBS, MANNERS)][:NUM_PAIRS]
ATOL, MIN_COSINE = 1e-4, 0.99999


def _bert_text_config(vocab_size: int) -> dict:
    return dict(model_type="bert", vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64)


def _train_pairs(model, processor, steps: int = 120) -> None:
    """Fit the tiny model to its own 24 pairs (full batch, AdamW), then put it in eval mode."""
    batch = processor(text=CAPTIONS, motions=random_motions(NUM_PAIRS, seed=3), return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, return_loss=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer_dir):
    """A trained tiny model (masked padding, BERT text tower with token_type_ids), saved, exported, quantised."""
    from transformers import AutoTokenizer

    from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only add contention on shared CI cores
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    # Gaussian-noise "motions" (conftest.random_motions) that the tiny model memorises; no body frame for noise
    processor = MotionPatchProcessor(
        MotionPatchFeatureExtractor("humanml3d", max_frames=64, body_frame=False, check_skeleton=False), tokenizer)
    torch.manual_seed(0)
    model = MotionPatchModel(
        tiny_config(mask_motion_padding=True, projection_dropout=0.0, text_config=_bert_text_config(len(tokenizer)))
    )
    _train_pairs(model, processor)
    root = tmp_path_factory.mktemp("onnx")
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    main(["--model", str(root / "model"), "--output", str(root / "fp32")])  # the console script's code path
    quantize_onnx(root / "fp32", root / "int8")
    loaded = MotionPatchModel.from_pretrained(root / "model").eval()
    yield loaded, processor, root
    torch.set_num_threads(threads)


def _embed_pair(model, inputs):
    with torch.no_grad():
        m = projected_features(model, "motion", **{k: inputs[k] for k in ("motion_values", "motion_attention_mask")})
        t = projected_features(model, "text", **{k: inputs[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                                                  if k in inputs})
    return m, t


def _assert_close(expected: torch.Tensor, got: torch.Tensor, what: str) -> None:
    assert got.shape == expected.shape, what
    diff = float((expected - got).abs().max())
    cosine = float(torch.nn.functional.cosine_similarity(expected.double(), got.double(), dim=-1).min())
    assert diff < ATOL and cosine > MIN_COSINE, f"{what}: max abs diff {diff:.2e}, min cosine {cosine:.7f}"


def test_graph_inputs_are_the_processor_outputs_with_dynamic_axes(exported):
    _, _, root = exported
    motion = ort.InferenceSession(str(root / "fp32" / "motion_encoder.onnx"))
    text = ort.InferenceSession(str(root / "fp32" / "text_encoder.onnx"))
    m_inputs = {i.name: i.shape for i in motion.get_inputs()}
    t_inputs = {i.name: i.shape for i in text.get_inputs()}
    assert list(m_inputs) == ["motion_values", "motion_attention_mask"]
    assert list(t_inputs) == ["input_ids", "attention_mask", "token_type_ids"]
    assert m_inputs["motion_values"][1:] == [3, 64, 80] and isinstance(m_inputs["motion_values"][0], str)
    assert all(isinstance(d, str) for shape in t_inputs.values() for d in shape)  # batch and sequence
    assert [o.name for o in motion.get_outputs()] == ["pooler_output"]
    config = json.loads((root / "fp32" / "onnx_config.json").read_text())
    assert config["exporter"] == "dynamo" and config["quantization"] is None
    assert config["parity_with_eager"]["motion"]["max_abs_diff"] < ATOL
    # the processor and config travel with the graphs
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(root / "fp32")
    assert processor.feature_extractor.max_frames == 64


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_fp32_matches_eager_for_any_batch_and_text_length(exported, batch):
    model, processor, root = exported
    onnx_model = MotionPatchOnnxModel.from_pretrained(root / "fp32", num_threads=1)
    rng = np.random.default_rng(batch)
    captions = [" ".join(rng.choice(CAPTIONS[0].split() + VERBS, size=int(rng.integers(1, 12)))) for _ in range(batch)]
    motions = random_motions(batch, seed=10 + batch, lengths=(5, 100))  # short ones exercise the padding mask
    inputs = processor(text=captions, motions=motions, return_tensors="pt")
    assert inputs["motion_attention_mask"].min() == 0 or batch == 1
    motion_ref, text_ref = _embed_pair(model, inputs)
    motion_inputs = {k: inputs[k] for k in ("motion_values", "motion_attention_mask", "motion_lengths")}
    _assert_close(motion_ref, onnx_model.get_motion_features(**motion_inputs).pooler_output, "motion")
    got_text = onnx_model.get_text_features(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], token_type_ids=inputs["token_type_ids"]
    ).pooler_output
    _assert_close(text_ref, got_text, "text")
    with torch.no_grad():
        eager = model(**inputs)
    out = onnx_model(**inputs)
    torch.testing.assert_close(out.logits_per_motion, eager.logits_per_motion, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.text_embeds, eager.text_embeds, atol=ATOL, rtol=0)


def _pair_hits(motion: torch.Tensor, text: torch.Tensor) -> int:
    sim = torch.nn.functional.normalize(text, dim=-1) @ torch.nn.functional.normalize(motion, dim=-1).T
    target = torch.arange(len(sim))
    return int((sim.argmax(1) == target).sum() + (sim.argmax(0) == target).sum())


def test_int8_keeps_the_training_pairs_ranked_first(exported):
    import onnx

    model, processor, root = exported
    inputs = processor(text=CAPTIONS, motions=random_motions(NUM_PAIRS, seed=3), return_tensors="pt")
    eager_hits = _pair_hits(*_embed_pair(model, inputs))
    hits, features = {}, {}
    for variant in ("fp32", "int8"):
        onnx_model = MotionPatchOnnxModel.from_pretrained(root / variant)
        features[variant] = (
            onnx_model.get_motion_features(inputs["motion_values"], inputs["motion_attention_mask"]).pooler_output,
            onnx_model.get_text_features(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]).pooler_output,
        )
        hits[variant] = _pair_hits(*features[variant])
    # int8 moves every embedding only a little (the rank check alone would accept any drift that keeps the top-1)
    for fp32, int8 in zip(features["fp32"], features["int8"], strict=True):
        cosine = torch.nn.functional.cosine_similarity(torch.as_tensor(fp32), torch.as_tensor(int8), dim=-1)
        assert float(cosine.min()) >= INT8_MIN_COSINE, cosine
    assert eager_hits >= 2 * NUM_PAIRS - 4, f"the tiny model did not fit its pairs ({eager_hits}/48): test is moot"
    assert hits["fp32"] == eager_hits
    assert hits["int8"] >= hits["fp32"] - INT8_MARGIN, hits
    graph = onnx.load(str(root / "int8" / "motion_encoder.onnx"))
    ops = {node.op_type for node in graph.graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops, sorted(ops)
    assert "Conv" in ops and "ConvInteger" not in ops, "the patch embedding must stay fp32 (ConvInteger is slower)"
    config = json.loads((root / "int8" / "onnx_config.json").read_text())
    assert config["quantization"]["weights"] == "int8"
    with pytest.raises(ValueError, match="already quantised"):
        quantize_onnx(root / "int8", root / "int8-again")


def test_unmasked_config_torchscript_exporter_ignores_what_eager_ignores(tmp_path, tiny_processor):
    """DistilBERT takes no token_type_ids and an unmasked config no motion mask: the graphs lack them, like eager."""
    torch.manual_seed(1)
    model = MotionPatchModel(tiny_config(vocab_size=len(tiny_processor.tokenizer))).eval()
    out = export_onnx(model, tiny_processor, tmp_path / "ts", exporter="torchscript")
    config = json.loads((out / "onnx_config.json").read_text())
    assert config["motion_inputs"] == ["motion_values"] and config["text_inputs"] == ["input_ids", "attention_mask"]
    assert {"token_type_ids", "motion_attention_mask", "motion_lengths"} <= set(config["ignored_inputs"])
    onnx_model = MotionPatchOnnxModel.from_pretrained(out)
    inputs = tiny_processor(
        text=["a person walks", "someone jumps forward quickly"], motions=random_motions(2, seed=5), return_tensors="pt",
        check_skeleton=False,
    )
    assert "token_type_ids" in inputs
    with torch.no_grad():
        eager = model(**inputs)
    got = onnx_model(**inputs)  # token_type_ids, motion_attention_mask and motion_lengths are accepted and ignored
    _assert_close(eager.motion_embeds, got.motion_embeds, "motion")
    _assert_close(eager.text_embeds, got.text_embeds, "text")
    with pytest.raises(ValueError, match="unsupported inputs"):
        onnx_model.get_text_features(inputs["input_ids"], position_ids=inputs["input_ids"])
    with pytest.raises(ValueError, match="not a MotionPatch ONNX export"):
        MotionPatchOnnxModel.from_pretrained(tmp_path)


def test_search_index_from_onnx_model_equals_eager(exported):
    from modeling_motionpatch.apps.search_index import MotionSearchIndex

    model, processor, root = exported
    motions = random_motions(12, seed=8)
    ids = [f"m{i}" for i in range(12)]
    eager = MotionSearchIndex.from_model(model, processor, motions, ids, batch_size=5)
    onnx = MotionSearchIndex.from_model(MotionPatchOnnxModel.from_pretrained(root / "fp32"), processor, motions, ids,
                                        batch_size=5)
    torch.testing.assert_close(onnx.embeddings, eager.embeddings, atol=ATOL, rtol=0)
    assert onnx.search(CAPTIONS[:4], k=3).ids == eager.search(CAPTIONS[:4], k=3).ids
