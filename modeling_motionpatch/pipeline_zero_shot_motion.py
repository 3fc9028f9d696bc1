"""``pipeline("zero-shot-motion-classification")``: label motions with free-text class names."""

from __future__ import annotations

import os
import zipfile
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Pipeline

from .configuration_motionpatch import PIPELINE_TASK
from .motion_patches import as_motion_array, is_nested_list_motion

DEFAULT_TEMPLATE = "A person {}."  # the paper's prompt
#: how captions name their subject: a label that already starts with one is a whole sentence, and a template that
#: only adds one ("A person {}.") keeps it as it is instead of doubling the subject ("A person a person walks.")
SUBJECTS = ("a person", "the person", "someone", "somebody", "a man", "a woman", "a human", "a figure", "he ", "she ")


def fill_template(template: str, label: str) -> str:
    """``template.format(label)``, except when the template only puts a subject before the label and the label has
    one already: then the label is the sentence (capitalised, with the template's ending when it has none)."""
    prefix, _, suffix = template.partition("{}")
    if prefix.strip().lower().rstrip() in {s.strip() for s in SUBJECTS} and label.lower().startswith(SUBJECTS):
        sentence = label[0].upper() + label[1:]
        return sentence if sentence.rstrip().endswith((".", "!", "?")) else sentence + suffix
    return template.format(label)


def window_starts(length: int, window: int) -> np.ndarray:
    """Start frames of the windows that cover a motion of ``length`` frames: ``window`` frames each, half a window
    apart, the last one ending at the motion's end (one window at 0 for a motion that fits)."""
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    return np.unique(np.append(np.arange(0, length - window, max(window // 2, 1)), length - window))


def ensemble_prompt_embeddings(text_embeds: torch.Tensor, num_templates: int) -> torch.Tensor:
    """Prompt ensembling: ``(templates * labels, dim)`` text embeddings, template-major (all labels of template 0
    first), -> ``(labels, dim)``, the mean over templates re-normalised. Shared by the pipeline and batch scripts."""
    labels = text_embeds.shape[0] // num_templates
    return F.normalize(text_embeds.float().view(num_templates, labels, -1).mean(0), dim=-1)


ACCEPTED_INPUTS = (
    "a (frames, joints, 3) numpy array, torch tensor or nested list (joints in the model's skeleton order, or named "
    "with joint_names=[...]), a path (str / os.PathLike) to a .npy, .npz or .bvh file, or a loaded BVH motion "
    "(.positions, .joint_names, .fps: what read_bvh returns); or a list, torch Dataset (e.g. transformers' "
    "KeyDataset(dataset, 'motion')) or generator of those"
)


def is_bvh_motion(motion) -> bool:
    """A ``.bvh`` path or a loaded motion with ``.positions``, ``.fps`` and ``.joint_names`` (or ``.names``)."""
    if isinstance(motion, (str, os.PathLike)):
        return os.fspath(motion).lower().endswith(".bvh")
    return all(hasattr(motion, a) for a in ("positions", "fps")) and any(
        hasattr(motion, a) for a in ("joint_names", "names")
    )


def load_motion(path: str | os.PathLike) -> np.ndarray:
    """The array stored in a motion file: a ``.npy``, or a ``.npz`` holding one array (or one named ``motion``,
    ``joints`` or ``positions``). Never unpickles. ``.bvh`` files are read by the package's
    ``modeling_motionpatch.apps.bvh`` (joints by name, units and up axis detected), not here."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: unsupported motion file type {suffix or '(none)'!r}. Accepted inputs: {ACCEPTED_INPUTS}.")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file. Accepted inputs: {ACCEPTED_INPUTS}.")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as loaded:
            names = loaded.files
            key = names[0] if len(names) == 1 else next((k for k in ("motion", "joints", "positions") if k in names), None)
            if key is not None and not {"lengths", "offsets"} & set(names):
                return loaded[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # pickled, truncated or not numpy at all
        raise ValueError(f"{path} cannot be read as a numpy file ({err}); re-save it with np.save / np.savez.") from None
    if key is not None:
        raise ValueError(
            f"{path} holds several concatenated clips (arrays {names}); slice one clip (joints[offset:offset + length]) "
            "and pass that array."
        )
    raise ValueError(f"{path} holds arrays {names}; expected one array, or one named 'motion', 'joints' or 'positions'.")


def check_candidate_labels(candidate_labels) -> tuple[str, ...]:
    """A list of labels, or one comma-separated string (``"walk, jump"``, as transformers' zero-shot pipelines take),
    -> a tuple of non-empty, distinct strings; anything else is a ``ValueError``."""
    if candidate_labels is None:
        raise ValueError(
            "zero-shot-motion-classification needs a non-empty list `candidate_labels=[...]` (or a comma-separated "
            "string); got None."
        )
    if isinstance(candidate_labels, str):
        labels = [label.strip() for label in candidate_labels.split(",")]
    else:
        try:
            labels = list(candidate_labels)
        except TypeError:
            labels = None
    if not labels:
        raise ValueError(
            "zero-shot-motion-classification needs a non-empty list `candidate_labels=[...]` (or a comma-separated "
            f"string); got {candidate_labels!r}."
        )
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise ValueError(f"candidate label {i} is a {type(label).__name__} ({label!r}); labels must be strings.")
        if not label.strip():
            raise ValueError(
                f"candidate label {i} is empty ({label!r} in {candidate_labels!r}); every label needs at least one "
                "non-space character."
            )
    if len(set(labels)) != len(labels):
        raise ValueError(f"candidate_labels contains duplicates: {labels}.")
    return tuple(labels)


def check_templates(hypothesis_template) -> tuple[str, ...]:
    """One template or a list of them -> a tuple of strings that each hold a ``{}`` placeholder and format."""
    templates = [hypothesis_template] if isinstance(hypothesis_template, str) else list(hypothesis_template or [])
    for t in templates:
        try:
            ok = isinstance(t, str) and "{}" in t and "\0" in t.format("\0")
        except (IndexError, KeyError, ValueError):  # "{} {}" or "{name}": more fields than the one label
            ok = False
        if not ok:
            break
    else:
        if templates:
            return tuple(templates)
    raise ValueError(
        f"every hypothesis_template needs exactly one '{{}}' placeholder for the label (e.g. {DEFAULT_TEMPLATE!r}); "
        f"got {hypothesis_template!r}."
    )


def check_top_k(top_k) -> int | None:
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer (or None for every label), got {top_k!r}.")
    return int(top_k)


class ZeroShotMotionClassificationPipeline(Pipeline):
    """Zero-shot motion classification with a :class:`MotionPatchModel`.

    Each candidate label goes into one or several hypothesis templates (``"A person {}."``, the paper's prompt, by
    default; several are averaged: prompt ensembling); scores are the softmax over labels of the scaled cosines.

    ```python
    >>> from transformers import pipeline
    >>> import modeling_motionpatch  # registers the task
    >>> classify = pipeline("zero-shot-motion-classification", model="path/to/motionpatch")
    >>> classify(joints, candidate_labels=["walks", "runs", "jumps"])
    [{'label': 'walks', 'score': 0.91, 'similarity': 0.63, 'match': True}, ...]
    ```

    Inputs: see :data:`ACCEPTED_INPUTS`; a batch (list, stacked array, ``Dataset``, generator) gives a list of results
    and ``batch_size`` runs several motions per forward pass with the same scores. BVH files and ``joint_names=[...]``
    are mapped onto the model's skeleton by joint name (``joint_map=`` completes the mapping; ``scale=`` / ``up_axis=``
    override what is detected in a BVH). ``top_k`` keeps the best ``k`` labels. ``similarity`` is the cosine of the
    motion and the label's prompt embedding, ``match`` whether it reaches ``config.match_threshold`` (or
    ``threshold=``; None without one), so that a motion no label describes says so. Motions longer than
    ``max_frames`` are read in windows half a window apart, each in its own body frame, and their embeddings averaged
    (``windows=False``: the first ``max_frames`` frames only, the reference behaviour).
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:  # the package's pairing check (tokenizer, skeleton, patch geometry); remote code alone runs without it
            from modeling_motionpatch.apps.folder_checks import check_model_processor
        except ImportError:
            return
        check_model_processor(self.model, self.processor)  # MotionPatchMismatchError when they do not fit

    def __call__(self, motions, candidate_labels: Sequence[str] | str | None = None, **kwargs):
        persons = self.processor.feature_extractor.num_persons
        if persons > 1:  # an interaction model: one input is a pair (a tuple, or a (persons, T, J, 3) array)
            if isinstance(motions, (np.ndarray, torch.Tensor)) and motions.ndim == 5:
                motions = [tuple(pair) for pair in motions]  # a stacked batch of pairs
            elif isinstance(motions, (np.ndarray, torch.Tensor)) and motions.ndim == 4:
                motions = tuple(motions)
            elif isinstance(motions, list):
                motions = [tuple(pair) if isinstance(pair, list) else pair for pair in motions]
            return super().__call__(motions, candidate_labels=candidate_labels, **kwargs)
        if isinstance(motions, np.ndarray) and motions.ndim == 4:
            motions = list(motions)
        elif isinstance(motions, torch.Tensor) and motions.dim() == 4:
            motions = list(motions.unbind(0))
        elif isinstance(motions, (list, tuple)) and is_nested_list_motion(motions):
            motions = as_motion_array(motions)  # one motion written as nested lists, not a list of poses
        elif isinstance(motions, tuple):
            motions = list(motions)  # a tuple of motions is a batch, like a list
        return super().__call__(motions, candidate_labels=candidate_labels, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, hypothesis_template=None, input_fps=None, top_k=None,
                             threshold=None, windows=None, scale=None, up_axis=None, joint_names=None, joint_map=None,
                             check_skeleton=None, **kwargs):
        preprocess = {k: v for k, v in (("scale", scale), ("up_axis", up_axis), ("joint_names", joint_names),
                                        ("joint_map", joint_map), ("check_skeleton", check_skeleton)) if v is not None}
        if windows is not None:
            preprocess["windows"] = bool(windows)
        if candidate_labels is not None:
            preprocess["candidate_labels"] = check_candidate_labels(candidate_labels)
        if hypothesis_template is not None:
            preprocess["hypothesis_template"] = check_templates(hypothesis_template)
        if input_fps is not None:
            preprocess["input_fps"] = input_fps
        postprocess = {"top_k": check_top_k(top_k)} if top_k is not None else {}
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
                raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold!r}.")
            postprocess["threshold"] = float(threshold)
        return preprocess, {}, postprocess

    def preprocess(self, motion, candidate_labels=None, hypothesis_template=DEFAULT_TEMPLATE, input_fps=None,
                   scale=None, up_axis=None, joint_names=None, joint_map=None, windows=True, check_skeleton=None):
        labels = check_candidate_labels(candidate_labels)
        templates = check_templates(hypothesis_template)
        if is_bvh_motion(motion):  # joints by name, metres, Y up, the file's frame rate
            try:  # the BVH reader is the package's (modeling_motionpatch.apps.bvh), not part of the model's code
                from modeling_motionpatch.apps.bvh import motion_for_skeleton
            except ImportError:
                raise ValueError(
                    "reading a BVH file needs the motionpatch package (pip install motionpatch), which this "
                    "environment lacks; or read it elsewhere and pass the (frames, joints, 3) positions in metres, "
                    "Y up, with joint_names=[...] and input_fps=..."
                ) from None
            skeleton = self.processor.feature_extractor.skeleton
            motion, fps, _ = motion_for_skeleton(motion, skeleton, scale=scale, up_axis=up_axis, joint_map=joint_map)
            input_fps, joint_names, joint_map = input_fps or fps, None, None
        elif scale is not None or up_axis is not None:
            raise ValueError("scale= and up_axis= apply to BVH inputs (a .bvh path or a loaded BVH motion); convert "
                             "an array to metres, Y up, before passing it.")
        elif isinstance(motion, (str, os.PathLike)):
            motion = load_motion(motion)
        elif isinstance(motion, tuple) and self.processor.feature_extractor.num_persons > 1:  # one pair
            inputs = self.processor(motions=[motion], return_tensors="pt", input_fps=input_fps,
                                    check_skeleton=check_skeleton)
            values, mask = inputs["motion_values"], inputs["motion_attention_mask"]  # (1, persons, ...) each
            return {"motion_values": values.flatten(1, 2), "motion_attention_mask": mask.flatten(1),  # batchable
                    "num_windows": torch.tensor([1]), "candidate_labels": labels, "templates": templates}
        elif not isinstance(motion, (np.ndarray, torch.Tensor, list, tuple)):
            hint = " (wrap a datasets.Dataset as KeyDataset(dataset, 'motion'))" if hasattr(motion, "column_names") else ""
            raise ValueError(f"the pipeline got a {type(motion).__name__}{hint}. Accepted inputs: {ACCEPTED_INPUTS}.")
        inputs = self.processor(motions=motion, return_tensors="pt", input_fps=input_fps, joint_names=joint_names,
                                joint_map=joint_map, check_skeleton=check_skeleton)
        if len(inputs["motion_values"]) != 1:  # e.g. a list inside the list: its scores would be dropped
            raise ValueError(
                f"one pipeline input holds {len(inputs['motion_values'])} motions; give a batch as one flat list of "
                f"motions (or a stacked (motions, frames, joints, 3) array). Accepted inputs: {ACCEPTED_INPUTS}."
            )
        extractor = self.processor.feature_extractor
        source_fps = input_fps or extractor.input_fps or extractor.fps
        window = int(np.ceil(extractor.max_frames * source_fps / extractor.fps))
        clip = as_motion_array(motion)  # already checked by the processor above
        length = len(clip)
        if windows and length > window:  # a long take: every part of it, in windows
            inputs = self.processor(motions=[clip[s : s + window] for s in window_starts(length, window)],
                                    return_tensors="pt", input_fps=input_fps, joint_names=joint_names,
                                    joint_map=joint_map, check_skeleton=False)  # the whole take was checked above
        values, mask = inputs["motion_values"], inputs["motion_attention_mask"]
        return {  # a motion's windows packed along axis 1, so that batching pads them (pad_collate_fn) per motion
            "motion_values": values.reshape(1, -1, *values.shape[2:]),
            "motion_attention_mask": mask.reshape(1, -1),
            "num_windows": torch.tensor([len(values)]),
            "candidate_labels": labels,  # tuples; batching (pad_collate_fn) turns them into lists of tuples
            "templates": templates,
        }

    def label_embeddings(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """Normalised text embeddings of the labels ``(labels, dim)``, averaged over templates.

        Cached per (labels, templates): classifying many motions against the same labels encodes the texts once.
        """
        key = (tuple(labels), tuple(templates))
        cache = self.__dict__.setdefault("_label_cache", {})
        if key not in cache:
            sentences = [fill_template(t, label) for t in templates for label in labels]
            text = self.processor(text=sentences, return_tensors="pt", padding=True)
            text = {k: v.to(self.model.device) for k, v in text.items()}
            with torch.no_grad():
                embeds = F.normalize(self.model.get_text_features(**text).pooler_output.float(), dim=-1)
            cache.clear()  # keep one label set: pipelines are usually called with the same labels
            cache[key] = ensemble_prompt_embeddings(embeds, len(templates))
        return cache[key]

    @staticmethod
    def _one_label_set(labels, templates) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The labels and templates of a forward pass: a tuple each for one motion, a list of tuples for a batch
        (transformers' ``pad_collate_fn`` collects non-tensor values into lists); one call uses one label set."""
        if isinstance(labels, tuple):
            return labels, templates
        if len(set(labels)) != 1 or len(set(templates)) != 1:
            raise ValueError("a batch mixes several candidate label sets or templates; classify them in separate calls.")
        return labels[0], templates[0]

    def _forward(self, model_inputs):
        batch_labels = model_inputs.pop("candidate_labels")
        labels, templates = self._one_label_set(batch_labels, model_inputs.pop("templates"))
        packed, packed_mask = model_inputs["motion_values"], model_inputs["motion_attention_mask"]
        counts = model_inputs["num_windows"].flatten().cpu()  # windows of each motion
        most = int(counts.max())
        persons = self.processor.feature_extractor.num_persons
        if persons > 1:  # pairs, one window each: (B, persons * 3, H, W) -> (B, persons, 3, H, W)
            windows = packed.reshape(len(counts), persons, -1, *packed.shape[2:])
            mask = packed_mask.reshape(len(counts), persons, -1)
        else:
            real = (torch.arange(most)[None, :] < counts[:, None]).flatten()  # drop the windows batching padded in
            windows = packed.reshape(len(counts) * most, -1, *packed.shape[2:])[real]
            mask = packed_mask.reshape(len(counts) * most, -1)[real]
        motion = self.model.get_motion_features(
            motion_values=windows.to(self.model.dtype), motion_attention_mask=mask
        ).pooler_output
        motion = F.normalize(motion.float(), dim=-1)
        if most > 1:  # the mean of each motion's windows, re-normalised
            owner = torch.repeat_interleave(torch.arange(len(counts)), counts).to(motion.device)
            pooled = torch.zeros(len(counts), motion.shape[1], device=motion.device).index_add_(0, owner, motion)
            motion = F.normalize(pooled, dim=-1)
        text = self.label_embeddings(labels, templates)
        similarity = motion @ text.to(motion.device).T  # (motions, labels), float32
        logits = self.model.logit_scale.float().exp() * similarity
        return {"logits": logits, "similarity": similarity, "candidate_labels": batch_labels}  # unbatched per motion

    def postprocess(self, model_outputs, top_k: int | None = None, threshold: float | None = None) -> list[dict[str, Any]]:
        labels = model_outputs["candidate_labels"]
        scores = model_outputs["logits"][0].softmax(-1).tolist()
        cosines = model_outputs["similarity"][0].tolist()
        if threshold is None:
            threshold = self.model.config.match_threshold
        result = [
            {"label": label, "score": score, "similarity": cosine,
             "match": None if threshold is None else cosine >= threshold}
            for score, cosine, label in sorted(zip(scores, cosines, labels), key=lambda x: -x[0])
        ]
        return result if top_k is None else result[:top_k]


def custom_pipelines_config() -> dict[str, dict[str, Any]]:
    """The ``custom_pipelines`` entry of a saved ``config.json``, as ``Pipeline.save_pretrained`` writes it.

    With it (and this file saved next to the model), ``pipeline(PIPELINE_TASK, model=folder, trust_remote_code=True)``
    loads this pipeline class and ``AutoModel`` from the folder alone, without the package installed.
    """
    cls = ZeroShotMotionClassificationPipeline
    return {PIPELINE_TASK: {"impl": f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}", "pt": ["AutoModel"],
                            "type": "multimodal"}}


def register_pipeline() -> None:
    """Register ``zero-shot-motion-classification`` with transformers' pipeline registry."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if PIPELINE_TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            PIPELINE_TASK, pipeline_class=ZeroShotMotionClassificationPipeline, pt_model=AutoModel, type="multimodal"
        )
