"""The real motion capture embedded in the package (processing/data/): size, licence, splits, exact decoding, the
rebuild from the full dataset, and the captions people would type."""

from __future__ import annotations

import json

import numpy as np
import pytest

from motionpatch_processing.bandai_labels import paraphrase_captions
from motionpatch_processing.embedded_bandai import (
    DS1_TEST_STYLES,
    DS1_VALIDATION_STYLES,
    EMBEDDED_FILE,
    build_embedded_subset,
    embedded_dataset_dict,
    load_embedded_clips,
    main,
)

from conftest import shared_path


@pytest.fixture(scope="module")
def clips():
    return load_embedded_clips()


def test_the_subset_is_compact_and_carries_its_licence():
    folder = EMBEDDED_FILE.parent
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 2**20
    licence = (folder / "LICENSE").read_text()
    assert "Attribution-NonCommercial 4.0 International" in licence
    readme = (folder / "README.md").read_text()
    assert "CC BY-NC 4.0" in readme and "2306.08861" in readme and "embedded_bandai" in readme


def test_clips_splits_and_held_out_takes(clips):
    assert len(clips) == 1571 and clips.joints.shape == (int(clips.lengths.sum()), 22, 3)
    assert len(set(clips.names.tolist())) == len(clips)  # no take twice, so none in two splits
    ds1 = clips.dataset == "ds1"
    assert ds1.sum() == 174 and (~ds1).sum() == 1397
    test, val = clips.split == "test", clips.split == "validation"
    assert set(clips.style[ds1 & test]) == set(DS1_TEST_STYLES) | {"normal"}
    assert set(clips.style[ds1 & val]) == set(DS1_VALIDATION_STYLES)
    assert "kick" in set(clips.content[test]) and "kick" not in set(clips.content[clips.split == "train"])
    takes = np.array([int(n.rsplit("_", 1)[1]) for n in clips.names[~ds1]])
    np.testing.assert_array_equal(takes[test[~ds1]] % 10, 0)
    np.testing.assert_array_equal(takes[val[~ds1]] % 10, 9)
    for pair in set(zip(clips.content[~ds1], clips.style[~ds1])):  # every ds2 pair in every split
        members = (clips.content == pair[0]) & (clips.style == pair[1])
        assert {s for s in clips.split[members]} == {"train", "validation", "test"}
    # metres, Y up, on the floor, human-sized
    heights = [float(np.ptp(clips.clip(i)[0, :, 1])) for i in range(0, len(clips), 97)]
    assert 1.2 < np.median(heights) < 2.0


def test_decoding_is_exact_to_the_millimetre_and_the_file_rebuilds():
    source = shared_path("bandai-namco")
    clips = load_embedded_clips()
    with np.load(source / "ds1_h22_20fps.npz") as z:
        joints, offsets, lengths = z["joints"].astype(np.float32), z["offsets"], z["lengths"]
    for i in (0, 57, 173):
        np.testing.assert_allclose(clips.clip(i), joints[offsets[i] : offsets[i] + lengths[i]], atol=5.01e-4)
    rebuilt = build_embedded_subset(source)
    with np.load(EMBEDDED_FILE) as z:
        for key in rebuilt:
            np.testing.assert_array_equal(z[key], rebuilt[key])
    assert main(["--root", str(source), "--output", str(EMBEDDED_FILE.parent), "--check"]) == 0


def test_paraphrases_start_with_the_template_caption():
    index = shared_path("bandai-namco", "ds2_index.jsonl")
    rows = [json.loads(line) for line in index.read_text().splitlines()][::40]
    for row in rows:
        captions = paraphrase_captions(row["content"], row["style"])
        assert captions[0] == row["caption_template"]
        assert len(captions) >= 12 and len(set(captions)) == len(captions)


def test_paraphrases_read_like_free_text():
    walk = paraphrase_captions("walk", "angry")
    assert walk[0] == "a person walks forward angrily."
    assert "a person is walking forward angrily." in walk and "someone walks in an angry way." in walk
    assert "a person strolls in an angry way." in walk and "walking forward angrily" in walk
    assert paraphrase_captions("bow", "normal")[:3] == ["a person bows.", "someone bows.", "a person is bowing."]
    assert paraphrase_captions("made-up", "normal") == ["a person made up."]  # unknown labels: the template alone


def test_dataset_schema_captions_and_split_remapping():
    dd = embedded_dataset_dict(("ds1",))
    assert {k: len(v) for k, v in dd.items()} == {"train": 114, "validation": 22, "test": 38}
    row = dd["test"][0]
    assert row["skeleton"] == "humanml3d" and row["fps"] == 20.0 and len(row["labels"]) == 2
    assert row["captions"][0].startswith("a person ") and len(row["captions"]) > 10
    moved = embedded_dataset_dict(("ds1",), splits={"ds1": "test"})
    assert len(moved["test"]) == 174 and len(moved["train"]) == 0
    with pytest.raises(ValueError, match="no part"):
        embedded_dataset_dict(("ds3",))
