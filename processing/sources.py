"""The one registry of dataset sources: what every command knows about a source, keyed by its name.

:data:`SOURCES` maps every source name to its :class:`SourceInfo`: what the dataset card and the model card say
about it (licence, citation, restriction, what its captions are), its aliases, the line ``--help`` prints for it,
and what the ``ARG`` of a ``NAME:ARG`` dataset spec means for it. Every command names data with one grammar
(:func:`motionpatch_processing.loading.parse_spec`):

* ``NAME`` or ``NAME:ARG`` - a registered source (or one of its aliases): ``synthetic``,
  ``bandai-namco:PATH``, ``bandai-namco-native:PATH``, ``embedded``, ``embedded:ds1``...;
* anything else - a folder written by ``motionpatch-prepare`` or a Hub dataset id ``user/name``.

:mod:`motionpatch_processing.loading` loads the sources a spec reads directly (its ``LOADERS``);
``motionpatch-prepare`` builds the others (:data:`motionpatch_processing.cli.PREPARERS`). This module imports
nothing of the package, so that the writers of prepared folders and their cards (:mod:`.io`) can read it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: where ``bandai-namco`` looks when its spec names no folder (the repository's shared data)
DEFAULT_BANDAI_DIR = "../shared/data/bandai-namco"
#: what the captions of a prepared source outside the registry are
UNKNOWN_CAPTIONS = "captions from the prepared dataset (see its dataset card)"


# ---------------------------------------------------------------------------
# sources: licence, citation, redistribution
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceInfo:
    """What the dataset card says about a data source, and whether it may be pushed publicly."""

    name: str
    pretty_name: str
    license: str  # Hub YAML licence id ("other" when there is none)
    license_text: str
    citation: str
    homepage: str = ""
    redistributable: bool = True
    restriction: str = ""  # why it may not be pushed publicly
    task_categories: tuple[str, ...] = ("feature-extraction",)
    tags: tuple[str, ...] = ()
    license_name: str | None = None
    label_derived_captions: bool = False
    synthetic: bool = False
    #: what the captions are (stated in the model card)
    captions_kind: str = UNKNOWN_CAPTIONS
    #: other names of the source in a spec (``bandai_namco``, ``bandai``)
    aliases: tuple[str, ...] = ()
    #: one line on the source (``motionpatch-prepare --help``, ``--dataset`` help)
    description: str = ""
    #: what ``ARG`` is in a ``NAME:ARG`` spec (``""``: the source takes none; ``"PATH"``: a file or folder)
    arg: str = ""
    #: the ``ARG`` used when the spec gives none
    default_arg: str | None = None


_AMASS_BIB = """@inproceedings{mahmood2019amass,
  title={{AMASS}: Archive of Motion Capture as Surface Shapes},
  author={Mahmood, Naureen and Ghorbani, Nima and Troje, Nikolaus F. and Pons-Moll, Gerard and Black, Michael J.},
  booktitle={ICCV}, year={2019}}"""
_MOTIONPATCH_BIB = """@inproceedings{yu2024motionpatches,
  title={Exploring Vision Transformers for 3D Human Motion-Language Models with Motion Patches},
  author={Yu, Qing and Tanaka, Mikihiro and Fujiwara, Kent},
  booktitle={CVPR}, year={2024}}"""
_AMASS_RESTRICTION = (
    "motions derive from AMASS, whose licence allows non-commercial research use only and forbids "
    "redistributing the data; share it only in a private repository (or share the preparation command)"
)

def _amass_source(name: str, short: str, *, citation: str, tags: tuple[str, ...], **info: Any) -> SourceInfo:
    """A source whose motions derive from AMASS: research-only, never pushed publicly, AMASS cited too."""
    return SourceInfo(
        name=name,
        license="other",
        citation=citation + _AMASS_BIB,
        redistributable=False,
        restriction=f"{short}'s " + _AMASS_RESTRICTION,
        tags=("motion", "3d-human-motion") + tags,
        **info,
    )


SOURCES: dict[str, SourceInfo] = {
    "humanml3d": _amass_source(
        "humanml3d",
        "HumanML3D",
        pretty_name="HumanML3D (joint positions)",
        license_name="amass-derived-research-only",
        license_text=(
            "HumanML3D's code is MIT-licensed; its motions derive from AMASS (and HumanAct12), which allow "
            "non-commercial research use only and forbid redistribution. Obtain the data from the original "
            "sources and agree to their licences."
        ),
        citation="""@inproceedings{guo2022humanml3d,
  title={Generating Diverse and Natural 3D Human Motions from Text},
  author={Guo, Chuan and Zou, Shihao and Zuo, Xinxin and Wang, Sen and Ji, Wei and Li, Xingyu and Cheng, Li},
  booktitle={CVPR}, year={2022}}\n""",
        homepage="https://github.com/EricGuo5513/HumanML3D",
        task_categories=("feature-extraction", "text-retrieval"),
        tags=("text-to-motion", "humanml3d"),
        captions_kind="human-written captions (HumanML3D annotations)",
        description="HumanML3D folder (new_joints/ or new_joint_vecs/, texts/, train/val/test.txt); 22 joints, 20 fps.",
    ),
    "kit": _amass_source(
        "kit",
        "KIT-ML",
        pretty_name="KIT Motion-Language (joint positions, 20 fps)",
        license_name="amass-derived-research-only",
        license_text=(
            "KIT-ML as distributed with HumanML3D's processing derives from the KIT Whole-Body Human Motion "
            "Database via AMASS: non-commercial research use only, no redistribution."
        ),
        citation="""@article{plappert2016kit,
  title={The {KIT} Motion-Language Dataset},
  author={Plappert, Matthias and Mandery, Christian and Asfour, Tamim},
  journal={Big Data}, volume={4}, number={4}, year={2016}}\n""",
        homepage="https://motion-annotation.humanoids.kit.edu/dataset/",
        task_categories=("feature-extraction", "text-retrieval"),
        tags=("text-to-motion", "kit-ml"),
        captions_kind="human-written captions (KIT-ML annotations)",
        description="KIT-ML in the HumanML3D layout; 21 joints, 12.5 fps converted to 20 fps, millimetres to metres.",
    ),
    "babel": _amass_source(
        "babel",
        "BABEL",
        pretty_name="BABEL action segments",
        license_name="babel-amass-research-only",
        license_text=(
            "BABEL's labels are released for non-commercial research under its own licence; the motions are "
            "AMASS sequences (non-commercial research only, no redistribution)."
        ),
        citation="""@inproceedings{punnakkal2021babel,
  title={{BABEL}: Bodies, Action and Behavior with English Labels},
  author={Punnakkal, Abhinanda R. and Chandrasekaran, Arjun and Athanasiou, Nikos and Quir{\\'o}s-Ram{\\'i}rez, Alejandra and Black, Michael J.},
  booktitle={CVPR}, year={2021}}\n""",
        homepage="https://babel.is.tue.mpg.de/",
        task_categories=("feature-extraction",),
        tags=("action-recognition", "babel"),
        label_derived_captions=True,
        captions_kind="label-derived: captions built from the dataset's action labels",
        description="BABEL annotation JSONs + joint arrays you provide: an action-classification dataset.",
    ),
    "interhuman": SourceInfo(
        name="interhuman",
        pretty_name="InterHuman two-person interactions",
        license="other",
        license_name="interhuman-research-only",
        license_text=(
            "InterHuman is distributed by its authors on request for non-commercial research; check the "
            "agreement you signed before sharing anything derived from it."
        ),
        citation="""@article{liang2024intergen,
  title={InterGen: Diffusion-based Multi-human Motion Generation under Complex Interactions},
  author={Liang, Han and Zhang, Wenqian and Li, Wenxuan and Yu, Jingyi and Xu, Lan},
  journal={International Journal of Computer Vision}, year={2024}}""",
        homepage="https://tr3e.github.io/intergen-page/",
        redistributable=False,
        restriction="InterHuman is shared by its authors on request under a research-only agreement",
        task_categories=("feature-extraction", "text-retrieval"),
        tags=("motion", "3d-human-motion", "two-person", "interaction", "interhuman"),
        captions_kind="human-written captions (InterHuman two-person interactions annotations)",
        description="InterHuman two-person folder (motions/person1|2, annots/, split/): motion_a/motion_b.",
    ),
    "bandai-namco": SourceInfo(
        name="bandai-namco",
        pretty_name="Bandai-Namco Research Motion Dataset",
        license="cc-by-nc-4.0",
        license_text="Creative Commons Attribution-NonCommercial 4.0 (CC BY-NC 4.0).",
        citation="""@article{kobayashi2023bandai,
  title={Motion Capture Dataset for Practical Use of AI-based Motion Editing and Stylization},
  author={Kobayashi, Makito and Liao, Chen-Chieh and Inoue, Keito and Yojima, Sentaro and Takahashi, Masafumi},
  journal={arXiv preprint arXiv:2306.08861}, year={2023}}""",
        homepage="https://github.com/BandaiNamcoResearchInc/Bandai-Namco-Research-Motiondataset",
        task_categories=("feature-extraction", "text-retrieval"),
        tags=("motion", "3d-human-motion", "motion-style", "bandai-namco"),
        label_derived_captions=True,
        captions_kind="label-derived: sentences built mechanically from the content and style labels",
        aliases=("bandai_namco", "bandai"),
        description="the Bandai-Namco Research Motion Dataset (BVH or its converted npz); label-derived captions.",
        arg="PATH",
        default_arg=DEFAULT_BANDAI_DIR,
    ),
    "bvh": SourceInfo(
        name="bvh",
        pretty_name="BVH motion collection",
        license="other",
        license_name="source-licence",
        license_text="The licence of the source BVH files applies; set it in this card before sharing.",
        citation="",
        tags=("motion", "3d-human-motion", "bvh"),
        description="a folder of BVH files (forward kinematics to joint positions; skeleton derived from the hierarchy).",
    ),
    "synthetic": SourceInfo(
        name="synthetic",
        pretty_name="motionpatch synthetic procedural motions",
        license="apache-2.0",
        license_text="Generated by motionpatch (Apache-2.0); contains no recorded human motion.",
        citation="",
        tags=("motion", "synthetic"),
        label_derived_captions=True,
        synthetic=True,
        captions_kind="synthetic: templated captions generated with procedural (not captured) motions",
        description="the embedded procedural dataset (no download, no real motion; demos and tests).",
    ),
}


SOURCES["embedded"] = SourceInfo(
    name="embedded",
    pretty_name="motionpatch embedded data: a Bandai-Namco motion-capture subset + synthetic motions",
    license="cc-by-nc-4.0",
    license_text=(
        "The real clips are a subset of the Bandai-Namco Research Motion Dataset, Creative Commons "
        "Attribution-NonCommercial 4.0 (CC BY-NC 4.0); the synthetic clips are generated by motionpatch (Apache-2.0). "
        "Models trained on them derive from CC BY-NC data: non-commercial use only."
    ),
    citation=SOURCES["bandai-namco"].citation,
    homepage=SOURCES["bandai-namco"].homepage,
    task_categories=("feature-extraction", "text-retrieval"),
    tags=("motion", "3d-human-motion", "bandai-namco", "synthetic"),
    label_derived_captions=True,
    captions_kind="label-derived: several phrasings built from the Bandai-Namco content and style labels, and the "
    "synthetic generator's templated captions",
    description="the real Bandai-Namco subset shipped in the package (ARG: its parts, ds1, ds2 or ds1+ds2; default "
    "both), in training plus the synthetic generator's clips.",
    arg="PARTS",
)
SOURCES["bandai-namco-native"] = dataclasses.replace(
    SOURCES["bandai-namco"],
    name="bandai-namco-native",
    aliases=(),
    description="a Bandai-Namco BVH folder with its own 22-joint hierarchy (the native skeleton, not SMPL's order).",
    default_arg=None,  # motionpatch-prepare reads it with: bandai-namco --variant native
)


#: every name a spec may use for a registered source (its own and its aliases) -> the source's name
NAMES: dict[str, str] = {alias: name for name, info in SOURCES.items() for alias in (name, *info.aliases)}


def canonical_name(name: str) -> str | None:
    """The registered source ``name`` stands for (itself or one of its aliases), or None."""
    return NAMES.get(name)


def source_info(name: str) -> SourceInfo:
    """The :class:`SourceInfo` of a registered source (or alias), or a neutral one for unknown names."""
    if name in NAMES:
        return SOURCES[NAMES[name]]
    return SourceInfo(name=name, pretty_name=name, license="other", license_name="unknown",
                      license_text="Unknown: set the licence of the source data before sharing.", citation="")




__all__ = ["DEFAULT_BANDAI_DIR", "NAMES", "SOURCES", "UNKNOWN_CAPTIONS", "SourceInfo", "canonical_name", "source_info"]
