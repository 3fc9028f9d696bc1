"""``motionpatch-prepare``: turn a motion dataset folder into a prepared dataset (and optionally push it).

Examples::

    motionpatch-prepare humanml3d --root HumanML3D/ --output data/humanml3d
    motionpatch-prepare kit --root KIT-ML/ --output data/kit --fps-mode linear
    motionpatch-prepare babel --root babel_v1.0_release/ --motions babel_joints/ --top-k 60 --output data/babel
    motionpatch-prepare interhuman --root InterHuman/ --z-up --output data/interhuman
    motionpatch-prepare synthetic --output data/synthetic --push-to-hub me/motionpatch-synthetic

Every run loads the source (skips are counted by reason in ``prepare_report.json`` and the card, including
those of BVH importers, which report them on their warning), optionally adds mirrored copies, computes the
normalisation statistics, writes the folder (:func:`~.io.save_prepared`: data, skeleton.json,
statistics.json, prepare_report.json, README.md card) atomically (:func:`save_atomically`) and prints a
summary. Bad source files are an error message and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from modeling_motionpatch import get_skeleton
from modeling_motionpatch.apps.motion_statistics import compute_dataset_statistics

from .babel import load_babel, read_class_names
from .bandai_namco import load_bandai_namco, load_bvh_collection
from .bandai_npz import dataset_from_npz
from .humanml3d import load_humanml3d, load_kit_ml
from .interhuman import load_interhuman
from .io import _OWNED as PREPARED_FILES
from .io import (
    PrepareReport,
    SkippedSamplesWarning,
    push_prepared,
    save_prepared,
    skeleton_row_counts,
)
from .mirror import add_mirrored
from .sources import SOURCES, source_info
from .synthetic import build_synthetic_dataset_dict


def _common(parser: argparse.ArgumentParser, needs_root: bool = True) -> None:
    if needs_root:
        parser.add_argument("--root", type=Path, required=True, help="source dataset folder (read only, never modified)")
    parser.add_argument("--output", type=Path, required=True, help="output folder (must be empty or new, see --overwrite)")
    parser.add_argument(
        "--format", choices=("arrow", "parquet"), default="arrow",
        help="arrow: DatasetDict.save_to_disk (reload with datasets.load_from_disk); parquet: data/{split}-*.parquet "
        "(the Hub layout). Default: arrow",
    )
    parser.add_argument(
        "--statistics", choices=("train", "all", "none"), default="train",
        help="splits the per-(joint, axis) mean/std are computed over: train (default), all (what the reference "
        "code did) or none",
    )
    parser.add_argument(
        "--mirror", action="store_true",
        help="add a left/right mirrored copy (id M<id>, captions with left/right swapped) of every sample that "
        "has none yet, in the same split",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier prepared dataset in --output")
    parser.add_argument(
        "--push-to-hub", metavar="REPO", default=None,
        help="also upload to this Hub dataset repository (user/name). Refused for data that may not be "
        "redistributed (HumanML3D, KIT-ML, BABEL, InterHuman) unless --private",
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``motionpatch-prepare``: one subcommand per source of :data:`PREPARERS`, described
    by its entry in the registry of sources (:data:`~.sources.SOURCES`)."""
    parser = argparse.ArgumentParser(
        prog="motionpatch-prepare",
        description="Prepare a motion dataset for motionpatch: joint positions in the common schema, mirrored "
        "copies, normalisation statistics, a dataset card, optionally pushed to the Hub.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `motionpatch-prepare SOURCE --help` for the options of a source.",
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, preparer in PREPARERS.items():
        info = SOURCES[name]
        p = sub.add_parser(name, help=info.description, description=info.description, epilog=preparer.epilog)
        _common(p, needs_root=preparer.needs_root)
        preparer.options(p)
    return parser


# ---------------------------------------------------------------------------
# options and loading per source
# ---------------------------------------------------------------------------
def _text_motion_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--motion-dir", choices=("auto", "new_joints", "new_joint_vecs"), default="auto",
                   help="auto (default): new_joints/{id}.npy, else new_joint_vecs/{id}.npy converted to joints")
    p.add_argument("--min-segment-frames", type=int, default=1,
                   help="skip (and count) caption segments shorter than this many source frames (default 1 = only "
                   "empty ones; 40 for HumanML3D / 24 for KIT-ML reproduces the T2M evaluators' minimum)")


def _kit_options(p: argparse.ArgumentParser) -> None:
    _text_motion_options(p)
    p.add_argument("--fps-mode", choices=("nearest", "linear"), default="nearest",
                   help="12.5 -> 20 fps conversion: nearest (repeat frames, the reference behaviour) or linear")
    p.add_argument("--length-scale", type=float, default=0.001,
                   help="factor applied to positions; 0.001 (default) turns KIT-ML's millimetres into metres")


def _bvh_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pattern", default="**/*.bvh", help="glob of the BVH files under --root (default **/*.bvh)")
    p.add_argument("--scale", type=float, default=1.0, help="length factor to metres (e.g. 0.01 for centimetres)")
    p.add_argument("--up-axis", choices=("y", "z"), default="y", help="vertical axis of the BVH files (default y)")
    p.add_argument("--skeleton-name", default=None, help="name of the derived skeleton (default bvh-<root folder>)")
    p.add_argument("--min-frames", type=int, default=2,
                   help="takes with fewer frames (after --target-fps) are skipped and counted (default 2)")
    p.add_argument("--target-fps", type=float, default=20.0,
                   help="linear frame-rate conversion to this rate (default 20, the models' rate; 0 keeps the files' rate)")
    p.add_argument("--sidecar-labels", action="store_true",
                   help="read labels from <file>.json next to each BVH file (fields content, style) and build "
                   "templated captions from them")
    p.add_argument("--caption-template", default="a person {content} {style}",
                   help="str.format template over the label fields (with --sidecar-labels)")


def _bandai_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", choices=("humanml3d", "native"), default="humanml3d",
                   help="humanml3d: reordered into the 22 SMPL joints (default); native: the 22 BVH joints")
    p.add_argument("--target-fps", type=float, default=20.0, help="frame rate of the output (BVH input only; default 20)")


def _babel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--motions", type=Path, default=None,
                   help="folder of joint arrays: {sid}.npy or {feat_p}.npy (default ROOT/motions)")
    p.add_argument("--motion-fps", type=float, default=20.0, help="frame rate of the joint arrays (default 20)")
    p.add_argument("--fps-mode", choices=("nearest", "linear"), default="linear", help="frame-rate conversion to 20 fps")
    p.add_argument("--skeleton", default="humanml3d", help="registered skeleton of the joint arrays (default humanml3d)")
    p.add_argument("--label-field", choices=("act_cat", "proc_label", "raw_label"), default="act_cat",
                   help="annotation field used as class labels (default act_cat, BABEL's action categories)")
    p.add_argument("--no-captions", action="store_true", help="do not keep proc_label as a (label-derived) caption")
    p.add_argument("--class-names", type=Path, default=None,
                   help="class list: JSON list, JSON {name: index} or text file (one per line), e.g. BABEL-60's")
    p.add_argument("--top-k", type=int, default=None, help="keep the K most frequent training labels as classes")
    p.add_argument("--no-seq-ann", action="store_true",
                   help="skip sequences without frame annotations instead of labelling them with seq_ann")
    p.add_argument("--min-segment-frames", type=int, default=1, help="skip (and count) shorter segments (default 1)")


def _interhuman_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--motion-fps", type=float, default=30.0, help="frame rate of the motion files (default 30)")
    p.add_argument("--fps-mode", choices=("nearest", "linear"), default="linear", help="conversion to 20 fps")
    p.add_argument("--z-up", action="store_true", help="files are Z-up: rotate to Y-up ((x, y, z) -> (x, z, -y))")


def _synthetic_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-train", type=int, default=2000, help="training clips (default 2000)")
    p.add_argument("--num-validation", type=int, default=250, help="validation clips (default 250)")
    p.add_argument("--num-test", type=int, default=250, help="test clips (default 250)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


Loaded = tuple[datasets.DatasetDict, PrepareReport]


def _load_humanml3d(args: argparse.Namespace) -> Loaded:
    return load_humanml3d(args.root, motion_dir=args.motion_dir, min_segment_frames=args.min_segment_frames)


def _load_kit(args: argparse.Namespace) -> Loaded:
    return load_kit_ml(args.root, fps_mode=args.fps_mode, length_scale=args.length_scale,
                       motion_dir=args.motion_dir, min_segment_frames=args.min_segment_frames)


def _load_babel(args: argparse.Namespace) -> Loaded:
    return load_babel(
        args.root, args.motions, motion_fps=args.motion_fps, fps_mode=args.fps_mode, skeleton=args.skeleton,
        label_field=args.label_field, captions_from=None if args.no_captions else "proc_label",
        class_names=read_class_names(args.class_names) if args.class_names else None, top_k=args.top_k,
        use_seq_ann=not args.no_seq_ann, min_segment_frames=args.min_segment_frames,
    )


def _load_interhuman(args: argparse.Namespace) -> Loaded:
    return load_interhuman(args.root, motion_fps=args.motion_fps, fps_mode=args.fps_mode, z_up=args.z_up)


def _load_synthetic(args: argparse.Namespace) -> Loaded:
    dd = build_synthetic_dataset_dict(
        num_train=args.num_train, num_validation=args.num_validation, num_test=args.num_test, seed=args.seed
    )
    report = PrepareReport(source="synthetic", root="(generated)", skeleton=get_skeleton("humanml3d"), fps=20.0,
                           parameters={"num_train": args.num_train, "num_validation": args.num_validation,
                                       "num_test": args.num_test, "seed": args.seed})
    return dd, report


def _load_bvh(args: argparse.Namespace) -> Loaded:
    kwargs = {"pattern": args.pattern, "scale": args.scale, "up_axis": args.up_axis,
              "skeleton_name": args.skeleton_name, "target_fps": args.target_fps or None,
              "min_frames": args.min_frames,
              "labels": "sidecar" if args.sidecar_labels else None,
              "caption_template": args.caption_template if args.sidecar_labels else None}
    return _with_report("bvh", args.root, load_bvh_collection(args.root, **kwargs), kwargs)


def _load_bandai(args: argparse.Namespace) -> Loaded:
    if args.root.suffix == ".npz":
        return _with_report("bandai-namco", args.root, dataset_from_npz(args.root), {})
    kwargs = {"variant": args.variant, "target_fps": args.target_fps}
    return _with_report("bandai-namco", args.root, load_bandai_namco(args.root, **kwargs), kwargs)


@dataclass(frozen=True)
class Preparer:
    """How ``motionpatch-prepare SOURCE`` reads a source: its own options and its loader."""

    options: Callable[[argparse.ArgumentParser], None]
    load: Callable[[argparse.Namespace], Loaded]
    needs_root: bool = True
    epilog: str | None = None


#: the sources ``motionpatch-prepare`` builds (keys of :data:`~.sources.SOURCES`), in the order of ``--help``
PREPARERS: dict[str, Preparer] = {
    "humanml3d": Preparer(_text_motion_options, _load_humanml3d),
    "kit": Preparer(_kit_options, _load_kit),
    "bvh": Preparer(_bvh_options, _load_bvh),
    "bandai-namco": Preparer(
        _bandai_options, _load_bandai,
        epilog="--root is a Bandai-Namco folder (data/*.bvh + *.json, cfg/) or a prepared ds*_h22_20fps.npz "
        "(+ ds*_index.jsonl beside it).",
    ),
    "babel": Preparer(_babel_options, _load_babel),
    "interhuman": Preparer(_interhuman_options, _load_interhuman),
    "synthetic": Preparer(_synthetic_options, _load_synthetic, needs_root=False),
}


def _load(args: argparse.Namespace) -> Loaded:
    return PREPARERS[args.source].load(args)


def _with_report(source: str, root: Path, result: Any, parameters: dict[str, Any]) -> Loaded:
    """Adapt loaders that return ``(DatasetDict, Skeleton)`` (or a report already) to ``(DatasetDict, report)``."""
    dd, second = result
    if isinstance(second, PrepareReport):
        return dd, second
    empty = [split for split, ds in dd.items() if len(ds) == 0]
    dd = datasets.DatasetDict({split: ds for split, ds in dd.items() if len(ds)})
    skeleton = get_skeleton(second)
    fps = 20.0
    for ds in dd.values():
        if len(ds):
            fps = float(ds[0]["fps"])
            break
    report = PrepareReport(source=source, root=str(root), skeleton=skeleton, fps=fps,
                           parameters={k: v for k, v in parameters.items() if v is not None})
    report.messages += [f"split {split!r} has no sample and is not included" for split in empty]
    return dd, report


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``motionpatch-prepare``; returns the exit status (0 on success)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    info = source_info(args.source)
    if args.private and not args.push_to_hub:
        parser.error("--private only applies together with --push-to-hub REPO.")
    if args.push_to_hub and not info.redistributable and not args.private:
        parser.error(
            f"refusing to push {args.source} to {args.push_to_hub!r} publicly: {info.restriction}. "
            "Add --private to push to a private repository."
        )
    output: Path = args.output
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        parser.error(f"--output {output} is not empty; choose a new folder or add --overwrite.")
    try:
        report = _prepare(args, argv, parser)
    except ValueError as exc:  # bad source folder / files: the message says what and how to fix
        print(f"motionpatch-prepare {args.source}: error: {exc}", file=sys.stderr)
        return 1
    print(summary(report, output))
    if args.push_to_hub:
        try:
            url = push_prepared(output, args.push_to_hub, private=True if args.private else None)
        except Exception as exc:  # noqa: BLE001 - the data is saved; report the failure and how to retry
            print(
                f"motionpatch-prepare: pushing to {args.push_to_hub!r} failed ({type(exc).__name__}: {exc}). The "
                f"prepared dataset is saved in {output}; retry with `python -c \"from motionpatch_processing.io "
                f"import push_prepared; push_prepared('{output}', '{args.push_to_hub}', private=...)\"`.",
                file=sys.stderr,
            )
            return 1
        print(f"pushed to {url}{' (private)' if args.private else ''}")
    return 0


def _prepare(args: argparse.Namespace, argv: Sequence[str], parser: argparse.ArgumentParser) -> PrepareReport:
    """Load, mirror, compute statistics and write ``args.output`` atomically; returns the report."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dd, report = _load(args)
    for w in caught:  # shown as usual; skips reported by importers without a report are counted in it
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        _record_warning(report, w.message)
    report.command = "motionpatch-prepare " + shlex.join(str(a) for a in argv)
    others = sorted(set(skeleton_row_counts(dd)) - {report.skeleton.name})
    if others:
        report.messages.append(
            f"rows of {len(others) + 1} skeletons (one per distinct BVH hierarchy): skeleton.json and the statistics "
            f"are those of the primary skeleton {report.skeleton.name!r} (the hierarchy of the most files); rows of "
            f"{others} name their own skeleton in the `skeleton` column"
        )
    if args.mirror:
        if others:
            parser.error(f"--mirror: the dataset mixes skeletons ({[report.skeleton.name, *others]}); mirroring swaps "
                         "the joints of one skeleton: prepare each hierarchy separately (--pattern) to mirror it.")
        if not report.skeleton.left_right_pairs:
            parser.error(f"--mirror: skeleton {report.skeleton.name!r} has no left/right joint pairs to swap.")
        dd, report.mirrored_added = add_mirrored(dd, report.skeleton)
    stats = None
    if args.statistics != "none":
        primary = _rows_of_skeleton(dd, report.skeleton.name) if others else dd
        stats = compute_dataset_statistics(primary, splits="all" if args.statistics == "all" else "train")
    save_atomically(dd, args.output, report, statistics=stats, format=args.format)
    return report


def _rows_of_skeleton(dd: datasets.DatasetDict, name: str) -> datasets.DatasetDict:
    """The rows of skeleton ``name`` (statistics are per joint: they are computed over one skeleton's rows)."""
    return datasets.DatasetDict({
        split: ds.select(np.flatnonzero(np.asarray(ds.data.column("skeleton").to_numpy(zero_copy_only=False)) == name))
        for split, ds in dd.items()
    })


def _record_warning(report: PrepareReport, message: Warning) -> None:
    """Count the skips a warning carries (``message.skipped``: reason -> ids) in ``report``; other warnings of
    loaders that have no report of their own become notes."""
    skipped = getattr(message, "skipped", None)
    if isinstance(skipped, dict):
        for reason, ids in skipped.items():
            report.skipped.extend(reason, ids)
        report.messages += [f"skipped {e}" for e in getattr(message, "errors", [])]
    elif not isinstance(message, SkippedSamplesWarning) and report.source in ("bvh", "bandai-namco"):
        report.messages.append(f"{type(message).__name__}: {message}")


# ---------------------------------------------------------------------------
# atomic output
# ---------------------------------------------------------------------------
def save_atomically(
    dataset_dict: datasets.DatasetDict, output: Path, report: PrepareReport, statistics: Any = None, format: str = "arrow"
) -> Path:
    """:func:`~.io.save_prepared` into a temporary sibling ``.{name}.incomplete-{pid}-*``, then rename it to
    ``output``: an interrupted run (even ``kill -9``) leaves ``output`` either complete or absent, never
    half-written. With ``--overwrite``, the earlier dataset stays in place until the new one is complete; the
    files of ``output`` that :func:`~.io.save_prepared` does not own are moved into the new folder. Partial
    siblings left by killed runs are removed by the next run into the same ``output``.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(output)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.incomplete-{os.getpid()}-", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the output gets the usual permissions
    try:
        save_prepared(dataset_dict, tmp, report.skeleton, statistics=statistics, format=format, report=report)
        if output.exists() and not any(output.iterdir()):
            output.rmdir()
        if not output.exists():
            os.rename(tmp, output)
            return output
        old = tmp / ".replaced"  # inside tmp, so that a kill between the two renames leaves it in a partial
        os.rename(output, old)
        try:
            os.rename(tmp, output)
        except BaseException:
            os.rename(old, output)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = output / ".replaced"
    for entry in old.iterdir():  # the user's own files beside the prepared ones
        if entry.name not in (*PREPARED_FILES, ".replaced") and not (output / entry.name).exists():
            os.rename(entry, output / entry.name)
    shutil.rmtree(old)
    return output


def _remove_stale_partials(output: Path) -> None:
    """Delete the ``.{name}.incomplete-{pid}-*`` siblings whose process no longer runs."""
    prefix = f".{output.name}.incomplete-"
    for sibling in output.parent.glob(glob.escape(prefix) + "*"):
        pid = sibling.name[len(prefix) :].split("-", 1)[0]
        if not (pid.isdigit() and sibling.is_dir()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(sibling, ignore_errors=True)
        except OSError:  # the process exists (another user's): leave its folder alone
            pass


def summary(report: PrepareReport, output: Path) -> str:
    """The text printed after a run: counts per split, skips and remarks, where it was written."""
    lines = [f"{report.source}: {sum(report.counts.values())} samples -> {output}"]
    lines += [f"  {split:<10} {n}" for split, n in report.counts.items()]
    if report.mirrored_added:
        lines.append(f"  mirrored copies added: {report.mirrored_added}")
    lines.append(f"  skipped: {report.skipped.count()}" + (f" ({report.skipped.summary(5)})" if report.skipped else ""))
    if report.remarks:
        lines.append(f"  kept with remarks: {report.remarks.summary(5)}")
    lines += [f"  note: {m}" for m in report.messages]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
