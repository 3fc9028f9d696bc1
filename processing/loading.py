"""Load the data a dataset spec names: the one dispatch that training, evaluation, zero-shot and the app share.

A spec (:func:`parse_spec`) is ``NAME`` or ``NAME:ARG`` for a source of :data:`LOADERS` (a registered source of
:data:`~.sources.SOURCES` that can be read without ``motionpatch-prepare``, or one of its aliases), and anything
else is a folder written by ``motionpatch-prepare`` or a Hub dataset id ``user/name``:

* ``synthetic`` - the embedded procedural generator (only the splits asked for are generated);
* ``bandai-namco[:PATH]`` - the Bandai-Namco Research Motion Dataset: a ``ds*_h22_20fps.npz``, the folder
  holding ``ds2_h22_20fps.npz``, or a BVH folder, in the 22 SMPL joints, split by take (default PATH
  :data:`~.sources.DEFAULT_BANDAI_DIR`);
* ``bandai-namco-native:PATH`` - a Bandai-Namco BVH folder with its own 22-joint hierarchy;
* ``embedded[:PARTS]`` - the real Bandai-Namco subset shipped in the package (``ds1``, ``ds2`` or ``ds1+ds2``,
  the default), plus synthetic clips in the splits given a synthetic size.

:func:`load_source` checks the spec once and returns a :class:`LoadedSource`: every split as a
``DatasetDict``, the skeleton, frame rate, statistics (prepared folders) and provenance notes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from modeling_motionpatch import Skeleton, get_skeleton

from .bandai_namco import load_bandai_namco
from .bandai_npz import dataset_from_npz
from .embedded_bandai import embedded_dataset_dict
from .io import load_prepared
from .sources import SOURCES, SourceInfo, canonical_name, source_info
from .synthetic import SKELETON as SYNTHETIC_SKELETON
from .synthetic import build_synthetic_dataset_dict
from .synthetic_motion import FPS as SYNTHETIC_FPS

#: the npz a ``bandai-namco`` folder is read from
BANDAI_NPZ = "ds2_h22_20fps.npz"


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed spec: ``source`` is a key of :data:`LOADERS` (with its ``arg``), or None for a prepared folder or
    a Hub dataset id (``text``)."""

    text: str
    source: str | None = None
    arg: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.text).expanduser()

    @property
    def hub_id(self) -> str | None:
        """The Hub dataset id a spec that is no local folder names, else None."""
        if self.source or self.path.exists():
            return None
        return self.text


@dataclass
class LoadedSource:
    """A loaded source: all its splits, skeleton, frame rate, statistics and provenance."""

    dataset: datasets.DatasetDict
    skeleton: Skeleton
    fps: float
    info: SourceInfo
    spec: DatasetSpec
    pretty_name: str
    captions_kind: str
    license: str | None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    report: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def hub_id(self) -> str | None:
        return self.spec.hub_id

    @property
    def dataset_type(self) -> str:
        """The id of the model card's ``model-index``: the Hub id, or ``motionpatch/<source>``."""
        return self.hub_id or f"motionpatch/{self.name}"

    @property
    def class_names(self) -> list[str] | None:
        return (self.report or {}).get("class_names")


# ---------------------------------------------------------------------------
# one loader per source that needs no motionpatch-prepare
# ---------------------------------------------------------------------------
def _load_synthetic(spec: DatasetSpec, sizes: Mapping[str, int], seed: int, options: dict[str, Any]) -> LoadedSource:
    dd = build_synthetic_dataset_dict(
        num_train=sizes.get("train"), num_validation=sizes.get("validation"), num_test=sizes.get("test"), seed=seed,
        **options,
    )
    counts = ", ".join(f"{n} {split}" for split, n in sizes.items())
    return _registered(
        spec, dd, get_skeleton(SYNTHETIC_SKELETON), float(SYNTHETIC_FPS),
        [f"procedurally generated motions (not motion capture) with templated captions ({counts}, seed {seed}); "
         "for demos and tests only - numbers on it say nothing about real data"],
    )


def _load_bandai(spec: DatasetSpec, sizes: Mapping[str, int], seed: int, options: dict[str, Any]) -> LoadedSource:
    root = Path(spec.arg or "").expanduser()
    if not root.exists():
        raise ValueError(
            f"--dataset {spec.text!r}: {str(root)!r} does not exist. Give {spec.source}:PATH (or --dataset_dir PATH "
            f"in training) with PATH the folder holding {BANDAI_NPZ} (e.g. ../shared/data/bandai-namco), a "
            "ds*_h22_20fps.npz or a Bandai-Namco BVH folder (ds2-bvh/...)."
        )
    native = spec.source == "bandai-namco-native"
    npz = root if root.suffix == ".npz" else root / options.pop("npz", BANDAI_NPZ)
    options.setdefault("splits", "take")
    if not native and npz.is_file():
        dd, skeleton = dataset_from_npz(npz, **options)
        where = f"{npz.name} (forward kinematics of the BVH takes, 20 fps, SMPL-22 joint order)"
    elif root.suffix == ".npz":
        raise ValueError(f"--dataset {spec.text!r}: the native skeleton needs a BVH folder, not an .npz.")
    else:
        variant = "native" if native else options.pop("variant", "humanml3d")
        dd, skeleton = load_bandai_namco(root, variant=variant, **options)
        where = f"BVH files under {root} ({variant} skeleton, 20 fps)"
    return _registered(
        spec, dd, skeleton, 20.0,
        [f"real motion capture: {where}; split by take (no take in two splits)",
         "captions are built from the content and style labels (e.g. 'a person bows angrily.'), not written by "
         "people; licence CC BY-NC 4.0 (non-commercial)"],
    )


def _load_embedded(spec: DatasetSpec, sizes: Mapping[str, int], seed: int, options: dict[str, Any]) -> LoadedSource:
    """The real subset (parts from the spec's ARG, or ``options["real"]``; ``options["real_splits"]`` moves parts
    to one split) plus, in every split with a synthetic size, the synthetic generator's clips (they bring actions
    the real subset lacks: jumps, squats, kicks...)."""
    parts = tuple(p for p in (spec.arg or "").split("+") if p) or tuple(options.pop("real", ("ds1", "ds2")))
    real = embedded_dataset_dict(parts, splits=options.pop("real_splits", None))
    added = {split: int(sizes.get(split) or 0) for split in real}
    if any(added.values()):
        synthetic = build_synthetic_dataset_dict(
            num_train=added.get("train", 0), num_validation=added.get("validation", 0), num_test=added.get("test", 0),
            seed=seed, **options,
        )
        real = datasets.DatasetDict({
            split: datasets.concatenate_datasets([ds, synthetic[split].cast(ds.features)]) if added[split] else ds
            for split, ds in real.items()
        })
    counts = {split: f"{len(ds) - added[split]} real + {added[split]} synthetic" for split, ds in real.items()}
    loaded = _registered(
        spec, real, get_skeleton("humanml3d"), 20.0,
        [f"real motion capture: the Bandai-Namco subset embedded in the package (parts {', '.join(parts)}; held-out "
         f"takes by the file's splits)" + (f", plus procedurally generated synthetic clips; {counts}"
                                           if any(added.values()) else ""),
         "label-derived captions; the real clips are CC BY-NC 4.0: weights trained on them derive from "
         "non-commercial data"],
    )
    if not any(added.values()):
        loaded.pretty_name = "Bandai-Namco motion-capture subset embedded in motionpatch"
    return loaded


def _registered(spec: DatasetSpec, dd, skeleton: Skeleton, fps: float, notes: list[str]) -> LoadedSource:
    info = SOURCES[spec.source]
    return LoadedSource(dd, skeleton, fps, info, spec, info.pretty_name, info.captions_kind, info.license, notes=notes)


#: the sources a spec can name directly (everything else is first written by ``motionpatch-prepare``)
LOADERS: dict[str, Callable[[DatasetSpec, Mapping[str, int], int, dict[str, Any]], LoadedSource]] = {
    "synthetic": _load_synthetic,
    "bandai-namco": _load_bandai,
    "bandai-namco-native": _load_bandai,
    "embedded": _load_embedded,
}


def _load_prepared(spec: DatasetSpec, revision: str | None) -> LoadedSource:
    try:
        prepared = load_prepared(str(spec.path) if spec.hub_id is None else spec.text, revision=revision)
    except ValueError:
        raise
    except Exception as e:  # network / Hub errors
        raise ValueError(
            f"could not load dataset {spec.text!r} from the Hub ({type(e).__name__}: {e}). If it is a local folder, "
            "check the path; if it is a Hub id, check the name, your connection and `huggingface-cli login`."
        ) from e
    report = prepared.report or {}
    license_ = report.get("license") or (prepared.card.data.to_dict().get("license") if prepared.card else None)
    info = source_info(str(report.get("source") or spec.path.name or spec.text))
    notes = [f"prepared dataset {spec.text} (source {info.name}, skeleton {prepared.skeleton.name})"]
    if report.get("restriction"):
        notes.append(str(report["restriction"]))
    return LoadedSource(
        prepared.dataset, prepared.skeleton, prepared.fps, info, spec, str(report.get("pretty_name") or info.name),
        info.captions_kind, license_, prepared.mean, prepared.std, report, notes,
    )


# ---------------------------------------------------------------------------
# the spec grammar and the one dispatch
# ---------------------------------------------------------------------------
def parse_spec(spec: str, folder: str | os.PathLike | None = None) -> DatasetSpec:
    """Check a dataset spec: ``NAME[:ARG]`` of a source of :data:`LOADERS`, else a prepared folder or Hub id.

    ``folder`` (training's ``--dataset_dir``) is the ``PATH`` of a source that reads one when the spec gives none;
    a spec and a ``folder`` that name different paths are an error.
    """
    text = str(spec).strip()
    if not text:
        raise ValueError(f"--dataset is empty; name one of {list(LOADERS)}, a prepared folder or a Hub id 'user/name'.")
    name, colon, arg = text.partition(":")
    source = canonical_name(name.strip())
    if source in LOADERS:
        info = SOURCES[source]
        arg = arg.strip() if colon else None
        if colon and not arg:
            raise ValueError(f"--dataset {text!r}: nothing after ':'; give {source}:{info.arg or 'ARG'} or {source}.")
        if arg and not info.arg:
            raise ValueError(f"--dataset {text!r}: {source} takes no ':ARG'; pass --dataset {source}.")
        if info.arg == "PATH":
            if arg and folder and Path(arg).expanduser() != Path(folder).expanduser():
                raise ValueError(
                    f"--dataset {text!r} and --dataset_dir {str(folder)!r} name two different folders; give one."
                )
            arg = arg or (str(folder) if folder else None) or info.default_arg
            if not arg:
                raise ValueError(f"--dataset {text!r} needs a folder: --dataset {source}:PATH.")
        return DatasetSpec(text, source, arg)
    path = Path(text).expanduser()
    if path.exists():
        return DatasetSpec(text)
    if source in SOURCES:
        raise ValueError(
            f"--dataset {text!r}: {source} is read from a folder written by motionpatch-prepare; run "
            f"`motionpatch-prepare {source} --root SOURCE_FOLDER --output DIR` and pass --dataset DIR."
        )
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ValueError(
            f"unknown dataset {text!r}: it is neither one of {list(LOADERS)} (NAME or NAME:ARG), nor an existing "
            "folder prepared by `motionpatch-prepare ... --output DIR`, nor a Hub dataset id 'user/name'. Check the "
            f"path (relative paths start from the current directory, {os.getcwd()})."
        )
    return DatasetSpec(text)


def load_source(
    spec: str | DatasetSpec,
    *,
    synthetic_sizes: Mapping[str, int] | None = None,
    synthetic_seed: int = 0,
    options: Mapping[str, Any] | None = None,
    revision: str | None = None,
) -> LoadedSource:
    """Load what ``spec`` names (a string is parsed with :func:`parse_spec`).

    Args:
        synthetic_sizes: clips per split of the synthetic generator: the splits of ``synthetic`` (default 2000 /
            250 / 250), the clips added to ``embedded``'s real splits (default none).
        synthetic_seed: seed of the synthetic generator.
        options: keyword arguments of the source's builder (training's ``--dataset_options``).
        revision: revision of a Hub dataset.
    """
    spec = spec if isinstance(spec, DatasetSpec) else parse_spec(spec)
    if spec.source is None:
        if options:
            raise ValueError(f"--dataset_options {dict(options)} apply to {list(LOADERS)}, not to prepared dataset "
                             f"{spec.text!r}; remove them.")
        return _load_prepared(spec, revision)
    if synthetic_sizes is None:
        synthetic_sizes = {"train": 2000, "validation": 250, "test": 250} if spec.source == "synthetic" else {}
    return LOADERS[spec.source](spec, dict(synthetic_sizes), int(synthetic_seed), dict(options or {}))


__all__ = ["BANDAI_NPZ", "LOADERS", "DatasetSpec", "LoadedSource", "load_source", "parse_spec"]
