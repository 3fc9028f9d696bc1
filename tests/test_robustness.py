"""Property-based checks (Hypothesis) that the feature extractor and the processor turn any input into either a
correct batch or a ``ValueError`` naming the sample and the problem: never another exception type, never NaN.

Generated inputs: any number of dimensions, 0 / 1 / 15 / 16 / 5,000 frames, wrong joint or coordinate counts,
float16/32/64, integer and bool dtypes, NaN / Inf at random places, values beyond the float32 range, numpy arrays,
torch tensors, nested lists, single motions, ragged lists and stacked batches, odd frame rates, bad captions.
Array contents come from a seeded numpy generator (the seed is drawn), so large arrays stay cheap to generate.
Examples are bounded and derandomized: every run tries the same inputs.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="the robustness suite needs hypothesis (the `test` extra)")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from modeling_motionpatch import MotionPatchFeatureExtractor, MotionPatchProcessor  # noqa: E402
from modeling_motionpatch.apps.motion_statistics import compute_statistics
from modeling_motionpatch.motion_patches import MotionInputWarning, resample_fps  # noqa: E402

JOINTS = 22
MAX_FRAMES = 64
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64, np.bool_]
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_rng = np.random.default_rng(0)
MEAN = _rng.normal(size=(JOINTS, 3)).astype(np.float32)
STD = _rng.uniform(0.01, 2.0, size=(JOINTS, 3)).astype(np.float32)
STD[3, 1] = 0.0  # a constant joint axis: the extractor's std floor applies


@pytest.fixture(scope="module")
def extractor():
    # the patch arithmetic on arbitrary arrays; the body frame has its own tests (tests/test_body_frame.py)
    return MotionPatchFeatureExtractor("humanml3d", mean=MEAN, std=STD, max_frames=MAX_FRAMES, body_frame=False,
                                       check_skeleton=False)  # generated arrays, not bodies (tests/test_body_frame.py)


@pytest.fixture(scope="module")
def processor(extractor, tokenizer):
    return MotionPatchProcessor(extractor, tokenizer)


@st.composite
def motion(draw, container=None):
    """One generated motion: ``(what is passed to the extractor, the same values as a numpy array)``."""
    problem = draw(st.sampled_from([None] * 10 + ["frames", "joints", "coords", "axes", "values"]))
    frames = 0 if problem == "frames" else draw(st.sampled_from([1, 15, 16, 17, 5000]) | st.integers(2, 120))
    shape = (
        frames,
        draw(st.sampled_from([21, 0, 1, 23])) if problem == "joints" else JOINTS,
        draw(st.sampled_from([0, 2, 4])) if problem == "coords" else 3,
    )
    if problem == "axes":
        shape = draw(st.sampled_from([shape[1:], (1, *shape), (), (frames,)]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "b":
        arr = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        arr = rng.integers(max(info.min, -10**6), min(info.max, 10**6), size=shape, dtype=dtype, endpoint=True)
    else:
        scale = draw(st.sampled_from([1.0, 1.0, 1.0, 100.0, 1e6, 1e36, 1e39]))  # 1e6 overflows float16, 1e39 float32
        with np.errstate(over="ignore"):
            arr = np.asarray(rng.standard_normal(shape) * scale).astype(dtype)
        if problem == "values" and arr.size:
            where = rng.integers(0, arr.size, draw(st.integers(1, 3)))
            arr.reshape(-1)[where] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    arr = np.asarray(arr)  # shape () gives numpy scalars
    container = container or draw(st.sampled_from(["numpy", "numpy", "torch", "list"]))
    if container == "torch":
        return torch.from_numpy(arr), arr
    if container == "list" and arr.size <= 3000:
        return arr.tolist(), arr
    return arr, arr


@st.composite
def batches(draw):
    """``(input, per-sample numpy arrays, whether the input is a list/stack of samples)``."""
    kind = draw(st.sampled_from(["single", "list", "list", "stacked"]))
    if kind == "single":
        passed, arr = draw(motion())
        if arr.ndim == 4:  # one (B, T, J, 3) array is a stacked batch
            return passed, list(arr), True
        return passed, [arr], False
    if kind == "list":
        pairs = draw(st.lists(motion(), min_size=1, max_size=3))
        return [p for p, _ in pairs], [a for _, a in pairs], True
    container = draw(st.sampled_from(["numpy", "torch"]))
    passed, arr = draw(motion(container="numpy"))
    stacked = np.stack([arr, arr[::-1].copy()]) if arr.ndim == 3 else np.stack([arr, arr])
    passed = torch.from_numpy(stacked) if container == "torch" else stacked
    if stacked.ndim != 4:  # not a (B, T, J, 3) batch: the extractor reads it as one motion
        return passed, [stacked], False
    return passed, list(stacked), True


def expected_problems(arrays, fps) -> tuple[set[int], bool]:
    """Indices of samples the extractor must refuse, and whether a clean batch may still overflow float32."""
    bad, may_overflow = set(), False
    for i, a in enumerate(arrays):
        if a.ndim != 3 or a.shape[2] != 3 or a.shape[1] != JOINTS or a.shape[0] == 0:
            bad.add(i)
            continue
        with np.errstate(over="ignore"):
            f32 = a.astype(np.float32)
        if not np.isfinite(f32).all():
            bad.add(i)
        else:
            normed = np.abs((f32.astype(np.float64) - MEAN) / np.maximum(STD, 1e-8))
            may_overflow |= bool(normed.max() > 1e37)
    return bad, may_overflow


def reference_patches(a: np.ndarray, fps: float | None, weights: np.ndarray) -> np.ndarray:
    """``(3, kept, 5 * 16)`` patches in float64: resample, crop to the first MAX_FRAMES, z-score, chain matrix."""
    m = a.astype(np.float32)
    if fps is not None:
        m = resample_fps(m, fps, 20.0)
    m = m[:MAX_FRAMES].astype(np.float64)
    normed = (m - MEAN) / np.maximum(STD, 1e-8).astype(np.float64)
    return np.einsum("tjc,pj->ctp", normed, weights.astype(np.float64))


FPS = st.sampled_from([None, None, None, 20.0, 12.5, 30.0, 0.0, -5.0, math.nan, math.inf])


def check_batch_or_error(call, arrays, listed, fps, weights):
    bad, may_overflow = expected_problems(arrays, fps)
    fps_ok = fps is None or (0 < fps < math.inf)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MotionInputWarning)  # short motions: tested in test_pipeline_inputs
            warnings.simplefilter("error", RuntimeWarning)  # numpy overflow/invalid warnings must not leak out
            out = call()
    except ValueError as err:  # MotionInputError is a ValueError
        message = str(err)
        event("refused: " + re.sub(r"[\d\[\](),.-]+", "#", message)[:40])  # shown by --hypothesis-show-statistics
        assert bad or not fps_ok or (may_overflow and "overflow" in message), f"refused a valid batch: {message}"
        if bad and fps_ok and listed and len(arrays) > 1:
            named = {int(i) for i in re.findall(r"motions? \[?(\d+)", message)}
            assert named & bad, f"the error names no refused sample {sorted(bad)}: {message}"
        if not fps_ok and not bad:
            assert "frame rate" in message
        return None
    event("accepted")
    assert not bad and fps_ok, f"accepted samples {sorted(bad)} (fps={fps}) that must be refused"
    values = np.asarray(out["motion_values"])
    lengths = np.asarray(out["motion_lengths"])
    mask = np.asarray(out["motion_attention_mask"])
    assert values.shape == (len(arrays), 3, MAX_FRAMES, weights.shape[0]) and values.dtype == np.float32
    assert np.isfinite(values).all()
    for i, a in enumerate(arrays):
        ref = reference_patches(a, fps, weights)
        kept = ref.shape[1]
        assert lengths[i] == kept
        tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(values[i, :, :kept], ref, rtol=1e-4, atol=tol)
        assert not values[i, :, kept:].any()  # padding: the mean pose, zeros after normalisation
        assert mask[i].sum() == math.ceil(kept / 16) * 5
    return out


@SETTINGS
@given(batch=batches(), fps=FPS)
def test_feature_extractor_gives_a_correct_batch_or_a_value_error(extractor, batch, fps):
    passed, arrays, listed = batch
    check_batch_or_error(lambda: extractor(passed, input_fps=fps), arrays, listed, fps, extractor._weights())


CAPTIONS = st.lists(
    st.one_of(st.text(max_size=40), st.sampled_from(["", "   ", "a person walks", "\t\n"]), st.none(), st.integers()),
    min_size=0,
    max_size=4,
)


@SETTINGS
@given(batch=batches(), captions=st.one_of(st.none(), CAPTIONS, st.text(max_size=20), st.integers()))
def test_processor_gives_a_correct_batch_or_a_value_error(processor, batch, captions):
    passed, arrays, listed = batch
    texts = [captions] if isinstance(captions, str) else captions
    text_ok = texts is None or (
        isinstance(texts, list) and len(texts) > 0 and all(isinstance(t, str) and t.strip() for t in texts)
    )
    if not text_ok:  # captions are checked first, whatever the motions
        with pytest.raises(ValueError, match=r"caption|`text`"):
            processor(text=captions, motions=passed, return_tensors="pt")
        return
    call = lambda: processor(text=captions, motions=passed, return_tensors="pt", truncation=True)  # noqa: E731
    out = check_batch_or_error(call, arrays, listed, None, processor.feature_extractor._weights())
    if out is not None and texts is not None:
        assert out["input_ids"].shape[0] == len(texts) and out["motion_values"].dtype == torch.float32


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pairs=st.lists(motion(), min_size=1, max_size=3))
def test_compute_statistics_is_finite_or_a_value_error(pairs):
    arrays = [a for _, a in pairs]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            mean, std = compute_statistics(p for p, _ in pairs)
    except ValueError as err:
        message = str(err)
        assert re.search(r"motion \d+", message), message
        return
    assert np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()
    assert len({a.shape[1:] for a in arrays}) == 1 and all(a.ndim == 3 and a.shape[0] > 0 for a in arrays)


def test_bad_frame_rates_and_two_person_groups_are_value_errors():
    for bad in (0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="positive, finite frame rate"):
            MotionPatchFeatureExtractor("humanml3d", fps=bad)
        with pytest.raises(ValueError, match="positive, finite frame rate"):
            MotionPatchFeatureExtractor("humanml3d", input_fps=bad)
    pair = MotionPatchFeatureExtractor("humanml3d", max_frames=MAX_FRAMES, num_persons=2, check_skeleton=False)
    a = np.zeros((20, JOINTS, 3), dtype=np.float32)
    assert pair([(a, a), (a, a[:16])])["motion_values"].shape == (2, 2, 3, MAX_FRAMES, 80)
    for bad, message in (([(a, a), (a,)], "sample 1 has 1 motions"), ([(a, a), 3.0], "sample 1 has float motions"),
                         (5, "got a int"), ([(a, "walk.npy")], "motion 1 is a str")):
        with pytest.raises(ValueError, match=message):
            pair(bad)
