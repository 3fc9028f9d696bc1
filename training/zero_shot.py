"""``motionpatch-zero-shot``: zero-shot motion classification accuracy of a trained model on a labelled split.

Examples::

    motionpatch-zero-shot --model runs/bandai-namco/best --dataset bandai-namco:../shared/data/bandai-namco \\
        --labels-column labels --label-index 0 --output zero_shot.json          # the 10 Bandai content labels
    motionpatch-zero-shot --model ... --dataset data/babel --label-index all --candidate-labels babel60_official.json
    motionpatch-zero-shot --model runs/h22/best --dataset data/bandai-native --split all --skeleton-from-dataset
    motionpatch-zero-shot --model runs/bandai-namco/best --motion bow.bvh --motion kick.bvh \\
        --candidate-labels "bows, kicks, walks"                                # label files: .bvh, .npy or .npz

With ``--motion`` (repeatable) each file is scored by the ``zero-shot-motion-classification`` pipeline itself: a
``.bvh`` is mapped onto the model's skeleton by joint name, its units and up axis detected (``--scale`` and
``--up-axis`` override them) and its frame rate read from the file; ``--candidate-labels`` is then a comma-separated
list or a label file.

Each motion is scored against every candidate label put into the prompt template(s) (``"A person {}."``, the
paper's prompt; several ``--template`` flags average the normalised text embeddings, prompt ensembling), exactly as
``pipeline("zero-shot-motion-classification")`` scores it. A prediction is a **hit at k** when any ground-truth
label of the motion is among the k best candidates (``--label-index N``: the N-th entry of the labels column;
``all``: every entry, multi-label data such as BABEL). Reported: top-1 / top-5 accuracy, balanced (mean per-class)
top-1, per-class accuracies, the confusion matrix (single-label), and two baselines: **chance** (uniform random
ranking: ``1 - C(L-g, k) / C(L, k)`` for ``g`` true labels among ``L`` candidates, averaged over motions) and
**majority** (always predicting the k most frequent true labels of the evaluated rows).

Equivalence with the pipeline: the default engine (``--engine batched``) computes the text embeddings of the
candidates once (``model.get_text_features`` on ``template.format(label)`` for every template and label,
normalised, averaged over templates, re-normalised) and the motion embeddings in batches on every process
(``get_motion_features``, Accelerate + ``gather_for_metrics``); the scores are
``exp(logit_scale) * motion @ text.T`` and their softmax - the computation of
:meth:`ZeroShotMotionClassificationPipeline._forward`, batched. ``--engine pipeline`` runs the pipeline itself, one
motion at a time on the main process (slow, for checking); ``tests/test_zero_shot.py`` checks that both give the
same predictions and scores.

Candidate labels: ``auto`` (the class list saved with a prepared dataset, else every distinct ground-truth label of
the chosen label index over all splits of the dataset, sorted), ``babel60`` (:data:`BABEL_60_CLASSES`, an
unverified list: a warning says so), or a file
(one label per line, or a JSON list / ``{label: index}`` mapping). ``--label-phrases`` turns labels into the text
put into the template: ``auto`` uses the Bandai-Namco verb phrases (``walk-turn-left`` -> "walks forward and turns
left") when every candidate has one, else the label with ``-``/``_`` as spaces; ``none`` uses labels verbatim; a
JSON file maps label -> phrase.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import pipeline

from modeling_motionpatch import ZeroShotMotionClassificationPipeline, similarity_logits
from modeling_motionpatch.pipeline_zero_shot_motion import ensemble_prompt_embeddings, fill_template
from motionpatch_processing.babel import read_class_names
from motionpatch_processing.bandai_labels import BANDAI_CONTENT_PHRASES, BANDAI_STYLE_PHRASES

from .encode import encode_motions, encode_texts, environment, load_model_and_data, make_accelerator, motion_source
from .encode import load_model_and_processor
from .encode import run_cli, write_result

logger = logging.getLogger("motionpatch_training.zero_shot")

PROG = "motionpatch-zero-shot"
DEFAULT_TEMPLATE = "A person {}."

#: An UNVERIFIED BABEL-60 class list (``--candidate-labels babel60``; the CLI warns when it is used). It was first
#: written from memory; it equals the entries with index < 60 of one version of ``action_recognition/data/
#: action_label_2_idx.json`` in github.com/abhinanda-punnakkal/BABEL (commit 9d81e04, as stored in a public code
#: index; BABEL's ``create_dataset.py`` keeps the labels with index < n_classes), but another stored version of that
#: file (commit a338184) orders and spells the labels differently, and it was not checked against the label files
#: of BABEL's released 60-class benchmark. For reported results pass the official list as a file.
BABEL_60_CLASSES: tuple[str, ...] = (
    "walk", "stand", "hand movements", "turn", "interact with / use object", "arm movements", "t pose", "step",
    "backwards movement", "raising body part", "look", "touch object", "stretch", "jump", "circular movement",
    "legs movement", "forwards movement", "sit", "run", "place something", "take/pick something up", "throw",
    "touching body parts", "bend", "foot movement", "kick", "move up/down incline", "stand up", "a pose",
    "lowering body part", "sideways movement", "actions with ball", "gesture", "head movements", "jog",
    "grasp object", "greet", "waist movements", "move something", "dance", "lift something", "knee movement",
    "exercise / training", "swing body part", "catch", "lean", "sports moves", "touching face", "poses",
    "clean something", "punch", "squat", "scratch", "perform", "play sport", "hop", "cross limbs", "stumble",
    "balance", "grab person / body part",
)
NAMED_LABEL_LISTS = {"babel60": BABEL_60_CLASSES}
UNVERIFIED_LABEL_LISTS = {
    "babel60": (
        "--candidate-labels babel60 is an UNVERIFIED class list (it matches one version of BABEL's "
        "action_label_2_idx.json, not checked against the released BABEL-60 benchmark): class names and their order "
        "may differ from the official ones. For reported results pass the official list as a file: "
        "--candidate-labels FILE (and motionpatch-prepare babel --class-names FILE), a JSON list, a JSON "
        "{name: index} or one name per line."
    )
}


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``motionpatch-zero-shot``."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Zero-shot classification accuracy (top-1/top-5, chance level) of a MotionPatch model on a "
        "labelled dataset split.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Each motion")[0].split("Examples::", 1)[1],
    )
    p.add_argument("--model", required=True, help="model folder (e.g. runs/NAME/best) or Hub id user/name")
    p.add_argument("--revision", default=None, help="model revision on the Hub")
    p.add_argument("--trust-remote-code", action="store_true", help="load a model saved with its code (auto_map)")
    p.add_argument("--dataset", default=None,
                   help="(or --motion) NAME[:ARG] as in motionpatch-train: 'synthetic', 'bandai-namco[:PATH]', "
                   "'bandai-namco-native:PATH', 'embedded[:ds1|ds2]'; or a motionpatch-prepare folder or a Hub "
                   "dataset id")
    p.add_argument("--motion", action="append", default=None, metavar="FILE",
                   help="score this .bvh / .npy / .npz file with the pipeline instead of a dataset (repeatable)")
    p.add_argument("--scale", type=float, default=None,
                   help="BVH length factor (--motion; default: detected, e.g. 0.01 for centimetres)")
    p.add_argument("--up-axis", choices=("y", "z"), default=None, help="vertical axis of BVH files (default: detected)")
    p.add_argument("--dataset-revision", default=None, help="revision of a Hub dataset")
    p.add_argument("--split", default="test", help="split to evaluate: a name, several joined by '+', or 'all'")
    p.add_argument("--labels-column", default="labels", help="column holding each row's list of labels")
    p.add_argument("--label-index", default="0",
                   help="which entry of the labels list is the ground truth (Bandai: 0 = content, 1 = style), or "
                   "'all' (multi-label: a hit when any of them is predicted)")
    p.add_argument("--candidate-labels", default="auto",
                   help="'auto' (dataset class list, else the distinct true labels), 'babel60' (an unverified list; "
                   "pass the official one as a file), or a file (one per line / JSON list / {label: index})")
    p.add_argument("--label-phrases", default="auto",
                   help="label -> text in the template: 'auto', 'none' (verbatim) or a JSON file {label: phrase}")
    p.add_argument("--template", action="append", default=None,
                   help=f"prompt template with '{{}}' (default {DEFAULT_TEMPLATE!r}); repeat to ensemble prompts")
    p.add_argument("--top-k", default="1,5", help="comma-separated k of the top-k accuracies")
    p.add_argument("--engine", choices=("batched", "pipeline"), default="batched",
                   help="batched (text once, motions in batches, multi-process) or the pipeline one motion at a time")
    p.add_argument("--batch-size", type=int, default=64, help="motions encoded at once per process")
    p.add_argument("--skeleton-from-dataset", action="store_true",
                   help="use the dataset's skeleton and statistics in the processor (cross-skeleton; model unchanged)")
    p.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N rows")
    p.add_argument("--synthetic-size", type=int, default=250, help="rows per split of the synthetic dataset")
    p.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--output", default=None, help="write the results as JSON to this file")
    p.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is available")
    return p


# ---------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------
def parse_label_index(text: str | int) -> int | None:
    """``"0"`` -> 0, ``"all"`` -> None (every label of a row is ground truth)."""
    if isinstance(text, int):
        return text
    if str(text).strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--label-index must be a non-negative integer or 'all', got {text!r}.") from None
    if value < 0:
        raise ValueError(f"--label-index must be a non-negative integer or 'all', got {value}.")
    return value


def row_labels(dataset, column: str, label_index: int | None, name: str) -> list[list[str]]:
    """The ground-truth labels of every row (empty when the row has none at ``label_index``)."""
    if column not in dataset.column_names:
        raise ValueError(
            f"{name!r} has no labels column {column!r} (columns: {dataset.column_names}); set --labels-column."
        )
    out = []
    for labels in dataset[column]:
        labels = [str(x) for x in (labels or []) if x is not None and str(x).strip()]
        if label_index is None:
            out.append(list(dict.fromkeys(labels)))
        else:
            out.append([labels[label_index]] if label_index < len(labels) else [])
    return out


def read_label_file(path: str | Path) -> list[str]:
    """Labels from a text file (one per line) or JSON (a list, or ``{label: index}`` ordered by index)."""
    return read_class_names(path)


def candidate_labels(spec: str, data, column: str, label_index: int | None) -> tuple[list[str], str]:
    """``(labels, where they came from)`` for ``--candidate-labels``."""
    if spec in NAMED_LABEL_LISTS:
        unverified = spec in UNVERIFIED_LABEL_LISTS
        if unverified:
            warnings.warn(UNVERIFIED_LABEL_LISTS[spec], UserWarning, stacklevel=2)
        note = f"{spec} ({len(NAMED_LABEL_LISTS[spec])} classes{', unverified' if unverified else ''})"
        return list(NAMED_LABEL_LISTS[spec]), note
    if spec != "auto":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ValueError(
                f"--candidate-labels {spec!r} is not 'auto', one of {sorted(NAMED_LABEL_LISTS)} or an existing file."
            )
        labels = read_label_file(path)
        source = f"file {path}"
    elif data.class_names and label_index is None:
        labels, source = list(data.class_names), "the class list saved with the dataset"
    else:
        seen: set[str] = set()
        for split in data.splits.values():
            if column in split.column_names:
                for labels_of_row in row_labels(split, column, label_index, data.name):
                    seen.update(labels_of_row)
        labels = sorted(seen)
        source = f"the distinct labels of {column}[{'all' if label_index is None else label_index}] over all splits"
    labels = list(dict.fromkeys(str(x) for x in labels if str(x).strip()))
    if len(labels) < 2:
        raise ValueError(f"zero-shot classification needs at least 2 candidate labels; {source} gives {labels}.")
    return labels, source


def label_phrases(labels: Sequence[str], mode: str) -> tuple[list[str], str]:
    """The text of each label in the template, and a note on the mapping (see the module docstring)."""
    if mode == "none":
        return list(labels), "labels verbatim"
    if mode == "auto":
        for table, what in ((BANDAI_CONTENT_PHRASES, "content"), (BANDAI_STYLE_PHRASES, "style")):
            if all(table.get(label) for label in labels):
                return [table[label] for label in labels], f"Bandai-Namco {what} phrases (processing.bandai_namco)"
        return [label.replace("-", " ").replace("_", " ") for label in labels], "labels with '-'/'_' as spaces"
    path = Path(mode).expanduser()
    if not path.is_file():
        raise ValueError(f"--label-phrases {mode!r} is not 'auto', 'none' or an existing JSON file.")
    table = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(table, dict):
        raise ValueError(f"--label-phrases {path}: expected a JSON object {{label: phrase}}.")  # noqa: TRY004
    return [str(table.get(label) or label) for label in labels], f"phrases from {path}"


def check_templates(templates: Sequence[str] | None) -> list[str]:
    templates = list(templates or [DEFAULT_TEMPLATE])
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"every --template needs a '{{}}' placeholder for the label; got {bad}.")
    return templates


# ---------------------------------------------------------------------------
# scoring and accuracy
# ---------------------------------------------------------------------------
def candidate_text_embeddings(accelerator, model, processor, texts: Sequence[str], templates: Sequence[str],
                              batch_size: int = 64) -> torch.Tensor:
    """``(labels, dim)``: each label's normalised text embedding averaged over the templates, re-normalised (the
    pipeline's prompt ensembling); with one template simply ``get_text_features(template.format(label))``."""
    sentences = [fill_template(t, x) for t in templates for x in texts]
    emb = encode_texts(accelerator, model, processor, sentences, batch_size, max_length=None)
    return ensemble_prompt_embeddings(emb, len(templates))


def batched_logits(accelerator, model, processor, get_motion, num_motions: int, texts: Sequence[str],
                   templates: Sequence[str], batch_size: int = 64, input_fps: float | None = None) -> torch.Tensor:
    """``(motions, labels)`` scaled cosine similarities ``exp(logit_scale) * motion @ text.T`` (float32, CPU)."""
    text = candidate_text_embeddings(accelerator, model, processor, texts, templates, batch_size)
    motion = encode_motions(accelerator, model, processor, get_motion, num_motions, batch_size, input_fps, windows=True)
    return similarity_logits(motion, text, model.logit_scale.detach().cpu())  # the pipeline's logits, batched


def pipeline_scores(model, processor, get_motion, num_motions: int, texts: Sequence[str], templates: Sequence[str],
                    input_fps: float | None = None) -> torch.Tensor:
    """``(motions, labels)`` softmax scores from ``pipeline("zero-shot-motion-classification")``, one motion at a time."""
    classify = pipeline("zero-shot-motion-classification", model=model, processor=processor,
                        device=next(model.parameters()).device)
    column = {t: j for j, t in enumerate(texts)}
    out = torch.zeros(num_motions, len(texts))
    template = templates[0] if len(templates) == 1 else list(templates)
    for i in range(num_motions):
        kwargs = {"input_fps": input_fps} if input_fps else {}
        for r in classify(get_motion(i), candidate_labels=list(texts), hypothesis_template=template, **kwargs):
            out[i, column[r["label"]]] = r["score"]
    return out


def chance_accuracy(num_labels: int, true_counts: np.ndarray, k: int) -> float:
    """Expected top-k accuracy (percent) of a uniformly random ranking: mean of ``1 - C(L-g, k) / C(L, k)``."""
    k = min(k, num_labels)
    miss = np.array([math.comb(num_labels - int(g), k) / math.comb(num_labels, k) for g in true_counts])
    return float((1.0 - miss).mean() * 100.0)


def accuracy_report(scores: torch.Tensor, truth: Sequence[Sequence[int]], labels: Sequence[str],
                    ks: Sequence[int]) -> dict[str, Any]:
    """Top-k accuracies, balanced top-1, per-class results, confusion matrix and baselines (vectorised over rows).

    ``scores`` ``(n, L)`` (logits or probabilities; only the ranking matters), ``truth[i]`` the candidate indices of
    row i's true labels (non-empty).
    """
    n, num_labels = scores.shape
    truth_mask = torch.zeros(n, num_labels, dtype=torch.bool)
    rows = torch.tensor([i for i, t in enumerate(truth) for _ in t], dtype=torch.long)
    cols = torch.tensor([c for t in truth for c in t], dtype=torch.long)
    truth_mask[rows, cols] = True
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    # rank (0-based) of the best-ranked true label of each row
    true_in_order = torch.gather(truth_mask, 1, order)
    first_hit = torch.argmax(true_in_order.int(), dim=1)
    counts = truth_mask.sum(1).numpy()
    freq = truth_mask.sum(0)
    report: dict[str, Any] = {"metrics": {}, "chance": {}, "majority": {}}
    for k in ks:
        kk = min(k, num_labels)
        hit = first_hit < kk
        report["metrics"][f"top{k}"] = float(hit.double().mean() * 100.0)
        report["chance"][f"top{k}"] = chance_accuracy(num_labels, counts, kk)
        majority = torch.argsort(freq, descending=True, stable=True)[:kk]
        report["majority"][f"top{k}"] = float(truth_mask[:, majority].any(1).double().mean() * 100.0)
    hit1 = (first_hit == 0).double()
    per_class = {}
    for j, label in enumerate(labels):
        members = truth_mask[:, j]
        support = int(members.sum())
        if support:
            per_class[label] = {"support": support, "top1": float(hit1[members].mean() * 100.0)}
    report["metrics"]["balanced_top1"] = float(np.mean([v["top1"] for v in per_class.values()]))
    report["chance"]["balanced_top1"] = report["chance"].get("top1", 100.0 / num_labels)
    report["per_class"] = per_class
    if int(counts.max()) == 1:  # single-label: rows = true label, columns = top-1 prediction
        confusion = torch.zeros(num_labels, num_labels, dtype=torch.long)
        confusion.index_put_((cols, order[:, 0]), torch.ones(n, dtype=torch.long), accumulate=True)
        report["confusion"] = confusion.tolist()
    report["predictions_top1"] = order[:, 0].tolist()
    return report


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def classify_files(args: argparse.Namespace) -> dict[str, Any]:
    """``--motion FILE ...``: the pipeline's scores of each file against ``--candidate-labels``."""
    spec = args.candidate_labels
    if spec in ("auto", "babel60") or not spec:
        raise ValueError("--motion needs --candidate-labels: a comma-separated list ('bows, kicks, walks') or a file.")
    labels = read_label_file(spec) if Path(spec).is_file() else [x.strip() for x in spec.split(",") if x.strip()]
    texts, phrases_note = label_phrases(labels, args.label_phrases)
    model, processor = load_model_and_processor(args.model, revision=args.revision,
                                                trust_remote_code=args.trust_remote_code)
    classify = ZeroShotMotionClassificationPipeline(model=model.eval(), processor=processor)
    phrase_of = dict(zip(texts, labels))
    kwargs = {k: v for k, v in (("scale", args.scale), ("up_axis", args.up_axis)) if v is not None}
    files = []
    for path in args.motion:
        bvh = str(path).lower().endswith(".bvh")
        scores = classify(str(path), candidate_labels=texts, hypothesis_template=check_templates(args.template),
                          **(kwargs if bvh else {}))
        files.append({"file": str(path), "scores": [{"label": phrase_of[s["label"]], "score": s["score"]} for s in scores]})
    result = {"task": "zero-shot-motion-classification", "model": args.model, "candidate_labels": labels,
              "candidate_texts": texts, "label_phrases": phrases_note, "files": files}
    lines = [f"{PROG}: {args.model}, {len(labels)} candidate labels"]
    for f in files:
        lines.append(f"{f['file']}: " + ", ".join(f"{s['label']} {s['score']:.3f}" for s in f["scores"][:5]))
    print("\n".join(lines), flush=True)
    if args.output:
        write_result(PROG, args.output, result)
    return result


def zero_shot(args: argparse.Namespace, accelerator=None) -> dict[str, Any]:
    """Run the classification described by parsed ``args``; returns the JSON-ready result (on every process)."""
    if getattr(args, "motion", None):
        return classify_files(args)
    if not args.dataset:
        raise ValueError("give --dataset (a labelled dataset to evaluate) or --motion FILE (files to label).")
    if getattr(args, "scale", None) is not None or getattr(args, "up_axis", None) is not None:
        raise ValueError("--scale and --up-axis apply to --motion .bvh files, not to --dataset.")
    t_start = time.perf_counter()
    label_index = parse_label_index(args.label_index)
    templates = check_templates(args.template)
    try:
        ks = sorted({int(k) for k in str(args.top_k).split(",") if k.strip()})
    except ValueError:
        raise ValueError(f"--top-k must be comma-separated positive integers, got {args.top_k!r}.") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"--top-k must be comma-separated positive integers, got {args.top_k!r}.")
    accelerator = accelerator or make_accelerator(cpu=args.cpu)
    model, processor, data = load_model_and_data(args, accelerator)
    gt = row_labels(data.dataset, args.labels_column, label_index, args.dataset)
    labels, labels_source = candidate_labels(args.candidate_labels, data, args.labels_column, label_index)
    texts, phrases_note = label_phrases(labels, args.label_phrases)
    if len(set(texts)) != len(texts):
        dup = [t for t, c in Counter(texts).items() if c > 1]
        raise ValueError(f"several candidate labels map to the same text {dup}; use --label-phrases none or a file.")
    index_of = {label: j for j, label in enumerate(labels)}
    no_label = sum(1 for g in gt if not g)
    truth_all = [[index_of[x] for x in g if x in index_of] for g in gt]
    outside = sum(1 for g, t in zip(gt, truth_all) if g and not t)
    rows = [i for i, t in enumerate(truth_all) if t]
    if not rows:
        raise ValueError(
            f"no row of split {args.split!r} of {args.dataset!r} has a ground-truth label among the candidates: "
            f"{no_label} rows have no label at {args.labels_column}[{args.label_index}], {outside} only labels outside "
            f"the {len(labels)} candidates ({labels_source}). Check --labels-column, --label-index and "
            "--candidate-labels."
        )
    truth = [truth_all[i] for i in rows]
    source = motion_source(data, processor, rows, args)
    processor, input_fps = source.processor, source.input_fps
    t0 = time.perf_counter()
    if args.engine == "pipeline":
        scores = pipeline_scores(model, processor, source, len(rows), texts, templates, input_fps)
    else:
        scores = batched_logits(accelerator, model, processor, source, len(rows), texts, templates,
                                args.batch_size, input_fps)
    encode_seconds = time.perf_counter() - t0
    report = accuracy_report(scores, truth, labels, ks)
    notes = list(data.notes)
    if no_label:
        notes.append(f"{no_label} rows have no label at {args.labels_column}[{args.label_index}] and are left out")
    if outside:
        notes.append(f"{outside} rows have only labels outside the candidates and are left out")
    ids = data.dataset["id"] if "id" in data.dataset.column_names else None
    result: dict[str, Any] = {
        "task": "zero-shot-motion-classification",
        "model": args.model,
        "model_revision": args.revision,
        "dataset": args.dataset,
        "dataset_revision": args.dataset_revision,
        "split": args.split,
        "labels_column": args.labels_column,
        "label_index": "all" if label_index is None else label_index,
        "templates": templates,
        "candidate_labels": labels,
        "candidate_texts": texts,
        "candidate_source": labels_source,
        "label_phrases": phrases_note,
        "engine": args.engine,
        "counts": {"rows": len(data.dataset), "evaluated": len(rows), "without_label": no_label,
                   "labels_outside_candidates": outside, "num_candidates": len(labels)},
        **{k: report[k] for k in ("metrics", "chance", "majority", "per_class")},
        "confusion": report.get("confusion"),
        "predictions": [
            {"id": ids[r] if ids is not None else r, "true": [labels[j] for j in t], "top1": labels[p]}
            for r, t, p in zip(rows, truth, report["predictions_top1"], strict=True)
        ],
        "processor": {**source.info, "input_fps": input_fps},
        "notes": notes,
        "environment": environment(accelerator),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": {"encode": round(encode_seconds, 3), "total": round(time.perf_counter() - t_start, 3)},
    }
    if accelerator.is_main_process:
        print(format_report(result), flush=True)
        if args.output:
            write_result(PROG, args.output, result)
    accelerator.wait_for_everyone()
    return result


def format_report(result: dict[str, Any]) -> str:
    """A short text summary: the accuracy table with its baselines and the per-class table."""
    ks = [k for k in result["metrics"] if k.startswith("top")]
    lines = [
        f"{PROG}: {result['model']} on {result['dataset']} [{result['split']}], {result['counts']['evaluated']} motions, "
        f"{len(result['candidate_labels'])} candidate labels ({result['candidate_source']}), "
        f"{result['labels_column']}[{result['label_index']}], template(s) {result['templates']}, "
        f"skeleton {result['processor']['skeleton']}"
        + (" (from the dataset: cross-skeleton)" if result["processor"]["skeleton_from_dataset"] else ""),
        *[f"  note: {n}" for n in result["notes"]],
        "",
        "| metric | model | chance (uniform) | majority class |",
        "|---|---:|---:|---:|",
    ]
    for k in ks + ["balanced_top1"]:
        name = k.replace("top", "top-").replace("balanced_top-1", "balanced top-1")
        majority = result["majority"].get(k)
        lines.append(f"| {name} | {result['metrics'][k]:.2f} | {result['chance'][k]:.2f} | "
                     + ("-" if majority is None else f"{majority:.2f}") + " |")
    lines += ["", "| class | support | top-1 |", "|---|---:|---:|"]
    lines += [f"| {c} | {v['support']} | {v['top1']:.1f} |" for c, v in result["per_class"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``motionpatch-zero-shot``; returns the exit status (2 for input errors)."""
    return run_cli(PROG, zero_shot, build_parser().parse_args(argv))

if __name__ == "__main__":
    sys.exit(main())
