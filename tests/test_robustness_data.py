"""Bad input files for the data side: the BVH reader, ``motionpatch-prepare`` and the caption/split readers.

Every malformed file must give a ``ValueError`` (``BVHError`` for BVH) that names the file and the line, or be
counted as skipped in ``prepare_report.json`` and the dataset card; never another exception, never a silent
drop. The BVH cases mutate real files of ``../shared/data`` (copies are written to ``tmp_path`` only; the tests
skip when the folder is absent). Hypothesis runs derandomized with a bounded number of examples and no example
database, so that the file is deterministic and fast.
"""

from __future__ import annotations

import json
import os
import re
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modeling_motionpatch.apps.bvh import BVH_SKIP_REASONS, BVHError, parse_bvh, parse_bvh_string
from motionpatch_processing.cli import main
from motionpatch_processing.humanml3d import load_humanml3d, parse_caption_lines, read_split_file
from motionpatch_processing.io import load_prepared

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BVH_DIR = SHARED_DATA / "bandai-namco" / "ds1-bvh" / "data"
FUZZ = settings(max_examples=25, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
LINE = re.compile(r"\blines? \d+")


def _real_bvh(n: int) -> list[Path]:
    """The ``n`` smallest real BVH files (fast to parse), or skip."""
    if not BVH_DIR.is_dir():
        pytest.skip(f"real data not available: {BVH_DIR} is absent (it ships beside the repository, not in it)")
    return sorted(BVH_DIR.glob("*.bvh"), key=lambda p: (p.stat().st_size, p.name))[:n]


@pytest.fixture(scope="module")
def real() -> bytes:
    return _real_bvh(1)[0].read_bytes()


def _motion_start(data: bytes) -> int:
    """Offset of the first MOTION value (after the ``Frame Time:`` line)."""
    return data.index(b"\n", data.index(b"Frame Time")) + 1


def _last_line_start(data: bytes) -> int:
    return data.rstrip().rindex(b"\n") + 1


def _draw_frame_line(real: bytes, data) -> tuple[list[bytes], int, list[bytes]]:
    """The file's lines, a drawn MOTION frame line index and that line's values."""
    lines = real.split(b"\n")
    first = real[: _motion_start(real)].count(b"\n")
    row = data.draw(st.integers(first, len(lines) - 2), label="frame line")
    return lines, row, lines[row].split()


def _assert_bvh_error(data: bytes, source: str = "/data/clip.bvh", reason: str | None = None) -> BVHError:
    with pytest.raises(BVHError) as exc:
        parse_bvh_string(data, source=source)
    msg = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert msg.startswith(source) and LINE.search(msg), f"no file and line in: {msg}"
    assert exc.value.reason in BVH_SKIP_REASONS
    if reason is not None:
        assert exc.value.reason == reason, msg
    return exc.value


# ---------------------------------------------------------------------------
# the BVH reader on mutated real files
# ---------------------------------------------------------------------------
def test_real_file_parses_and_crlf_tabs_parse_identically(real):
    """CRLF line ends and tabs are whitespace in BVH: both parse to exactly the same values."""
    base = parse_bvh_string(real, source="real.bvh")
    assert base.num_frames > 1
    for variant in (real.replace(b"\n", b"\r\n"), real.replace(b" ", b"\t"), b"\xef\xbb\xbf" + real):
        got = parse_bvh_string(variant, source="variant.bvh")
        assert got.hierarchy.names == base.hierarchy.names and np.array_equal(got.values, base.values)


@FUZZ
@given(frac=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_at_any_offset_is_a_bvh_error(real, frac):
    # any cut before the last frame line loses values (a cut inside the last number could not be detected)
    _assert_bvh_error(real[: int(frac * _last_line_start(real))])


@FUZZ
@given(data=st.data())
def test_letters_in_numbers_name_line_and_value(real, data):
    lines, row, tokens = _draw_frame_line(real, data)
    col = data.draw(st.integers(0, len(tokens) - 1), label="value")
    junk = data.draw(st.sampled_from([b"x", b"1,5", b"0.1.2", b"--1", b"e5e", b"nan%"]))
    tokens[col] = tokens[col] + junk if junk != b"1,5" else junk
    lines[row] = b" ".join(tokens)
    err = _assert_bvh_error(b"\n".join(lines), reason="non-numeric MOTION value")
    assert f"line {row + 1}, value {col + 1}:" in str(err)


@FUZZ
@given(data=st.data())
def test_channel_count_mismatch(real, data):
    lines, row, tokens = _draw_frame_line(real, data)
    if data.draw(st.booleans(), label="drop (else add) a value"):
        del tokens[data.draw(st.integers(0, len(tokens) - 1))]
    else:
        tokens.append(b"0.5")
    lines[row] = b" ".join(tokens)
    _assert_bvh_error(b"\n".join(lines), reason="MOTION values do not match Frames x channels")
    # a CHANNELS line that declares fewer channels than it names
    k = data.draw(st.integers(0, real.count(b"CHANNELS 6") - 1), label="joint")
    pos = [m.start() for m in re.finditer(rb"CHANNELS 6", real)][k]
    _assert_bvh_error(real[:pos] + b"CHANNELS 5" + real[pos + 10 :], reason="malformed HIERARCHY")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: re.sub(rb"Frames:[^\n]*\n", b"", d), "malformed MOTION header"),
        (lambda d: re.sub(rb"Frame Time:[^\n]*\n", b"", d), "malformed MOTION header"),
        (lambda d: re.sub(rb"Frames:[^\n]*", b"Frames: twenty", d), "malformed MOTION header"),
        (lambda d: re.sub(rb"Frame Time:[^\n]*", b"Frame Time: 0", d), "malformed MOTION header"),
        (lambda d: d[: _motion_start(d)].replace(re.search(rb"Frames:[^\n]*", d).group(0), b"Frames: 0"),
         "BVH file with 0 frames"),
        (lambda d: re.sub(rb"Frames:[^\n]*", b"Frames: 0", d), "BVH file with 0 frames"),
        (lambda d: d.replace(b"MOTION", b"MOTON"), "no MOTION section"),
        (lambda d: d.replace(b"OFFSET", b"OFSET", 1), "malformed HIERARCHY"),
        (lambda d: d.replace(b"}", b"", 1), "malformed HIERARCHY"),
        (lambda d: d[: _motion_start(d)] + b"nan " + d[_motion_start(d) :].split(b" ", 1)[1],
         "non-finite MOTION value"),
    ],
    ids=["no-frames-line", "no-frame-time-line", "frames-word", "frame-time-0", "zero-frames",
         "zero-frames-with-values", "no-motion", "bad-keyword", "unbalanced-brace", "nan-value"],
)
def test_malformed_header_and_zero_frames(real, tmp_path, mutate, reason):
    path = tmp_path / "clip.bvh"
    path.write_bytes(mutate(real))
    with pytest.raises(BVHError) as exc:
        parse_bvh(path)
    assert str(exc.value).startswith(str(path)) and LINE.search(str(exc.value)), str(exc.value)
    assert exc.value.reason == reason, str(exc.value)


@FUZZ
@given(data=st.data())
def test_random_byte_edits_never_raise_another_exception(real, data):
    """Any edit (bytes replaced, inserted or removed anywhere) parses or gives a BVHError naming file and line."""
    buf = bytearray(real)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        pos = data.draw(st.integers(0, len(buf) - 1), label="offset")
        new = data.draw(st.binary(min_size=0, max_size=3), label="bytes")
        buf[pos : pos + data.draw(st.integers(0, 3), label="removed")] = new
    try:
        parse_bvh_string(bytes(buf), source="edited.bvh")
    except BVHError as exc:
        assert str(exc).startswith("edited.bvh") and LINE.search(str(exc)), str(exc)


# ---------------------------------------------------------------------------
# motionpatch-prepare bvh counts every bad file and keeps every good one
# ---------------------------------------------------------------------------
BAD_FILES = {
    "truncated.bvh": (lambda d: d[: len(d) // 2], "MOTION values do not match Frames x channels"),
    "no_frames_line.bvh": (lambda d: re.sub(rb"Frames:[^\n]*\n", b"", d), "malformed MOTION header"),
    "no_frame_time.bvh": (lambda d: re.sub(rb"Frame Time:[^\n]*\n", b"", d), "malformed MOTION header"),
    "letters.bvh": (lambda d: d[: _motion_start(d)] + b"abc " + d[_motion_start(d) :], "non-numeric MOTION value"),
    "channels.bvh": (lambda d: d.replace(b"CHANNELS 6", b"CHANNELS 5", 1), "malformed HIERARCHY"),
    "zero_frames.bvh": (lambda d: d[: _motion_start(d)].replace(re.search(rb"Frames:[^\n]*", d).group(0),
                                                                 b"Frames: 0"), "BVH file with 0 frames"),
}


def test_prepare_bvh_report_and_card_count_each_bad_file(tmp_path, capsys):
    sources = _real_bvh(3)
    root = tmp_path / "bvh"
    root.mkdir()
    base = sources[0].read_bytes()
    for src in sources:
        (root / src.name).write_bytes(src.read_bytes())
    (root / "crlf.bvh").write_bytes(base.replace(b"\n", b"\r\n"))  # valid: kept
    for name, (mutate, _) in BAD_FILES.items():
        (root / name).write_bytes(mutate(base))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["bvh", "--root", str(root), "--output", str(out), "--scale", "0.01"]) == 0
    report = json.loads((out / "prepare_report.json").read_text())
    expected: dict[str, list[str]] = {}
    for name, (_, reason) in BAD_FILES.items():
        expected.setdefault(reason, []).append(name)
    assert {r: sorted(v["first_ids"]) for r, v in report["skipped"].items()} == {r: sorted(v) for r, v in expected.items()}
    assert {r: v["count"] for r, v in report["skipped"].items()} == {r: len(v) for r, v in expected.items()}
    assert sum(report["counts"].values()) == len(sources) + 1  # no good file lost
    prepared = load_prepared(out)
    kept = {row for split in prepared.dataset.values() for row in split["source"]}
    assert kept == {p.name for p in sources} | {"crlf.bvh"}
    card = (out / "README.md").read_text()
    for reason, names in expected.items():
        assert re.search(rf"\| {re.escape(reason)} \| {len(names)} \|", card), reason
    assert f"skipped: {len(BAD_FILES)}" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# captions and split files (HumanML3D layout)
# ---------------------------------------------------------------------------
@FUZZ
@given(st.lists(st.text(alphabet=st.sampled_from("ab #.-0123456789einfINFNa\t"), max_size=30), max_size=8))
def test_caption_parser_accounts_for_every_line(lines):
    good, bad = parse_caption_lines("\n".join(lines))
    nonblank = [n for n, line in enumerate("\n".join(lines).splitlines(), 1) if line.strip()]
    assert len(good) + len(bad) == len(nonblank) and set(bad) <= set(nonblank)
    for caption, start, end in good:
        assert caption and not np.isinf(start) and not np.isinf(end) and not (start < 0 or end < 0)


def _humanml3d_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "new_joints").mkdir(parents=True)
    (root / "texts").mkdir()
    for cid in ("000001", "000002", "000003", "000004"):
        m = rng.normal(scale=0.1, size=(30, 22, 3)).astype(np.float32)
        m[:, :, 1] += 0.9
        np.save(root / "new_joints" / f"{cid}.npy", m)
    (root / "texts" / "000001.txt").write_text(
        "a person walks.#a/DET#0.0#0.0\n"
        "no fields at all\n"
        "too#many#fields#0#0\n"
        "a person jumps.#x#inf#1.0\n"
        "a person waves.#x#-1#1.0\n"
        "#empty caption#0#0\n"
        "a person sits.#x#0.5#1.0\n"
    )
    (root / "texts" / "000002.txt").write_bytes(b"")
    (root / "texts" / "000003.txt").write_bytes(b"a person \xff\xfe runs.#x#0#0\n")
    (root / "train.txt").write_text("000001\n000002\n000003\nmissing_a\n000001\n")
    (root / "val.txt").write_text("000004\nmissing_b\n")
    return root


def test_malformed_caption_and_split_files_are_counted(tmp_path):
    root = _humanml3d_folder(tmp_path / "h")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dd, report = load_humanml3d(root)
    assert sorted(report.skipped.items["malformed caption line"]) == [f"000001:{n}" for n in (2, 3, 4, 5, 6)]
    assert report.skipped.items["missing motion file"] == ["missing_a", "missing_b"]
    assert report.skipped.items["duplicate id in split file"] == ["train:000001"]
    assert report.skipped.items["unreadable or non-UTF-8 caption file (clip kept without its captions)"] == ["000003"]
    assert report.remarks.items["empty caption file (kept without captions)"] == ["000002"]
    train = dd["train"]
    assert list(train["id"]) == ["000001", "000001_0.5_1.0", "000002", "000003"]
    assert train[0]["captions"] == ["a person walks."] and train[3]["captions"] == []
    assert list(dd["validation"]["id"]) == ["000004"]


def test_non_utf8_split_file_is_a_clear_error(tmp_path, capsys):
    root = _humanml3d_folder(tmp_path / "h")
    (root / "test.txt").write_bytes(b"000001\n\xff\xfe\n")
    with pytest.raises(ValueError, match=r"split file .*test\.txt is not UTF-8 text \(byte 7"):
        read_split_file(root / "test.txt")
    assert main(["humanml3d", "--root", str(root), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "test.txt is not UTF-8 text" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_babel_and_interhuman_bad_entries_are_counted(tmp_path, capsys):
    rng = np.random.default_rng(1)
    babel = tmp_path / "babel"
    (babel / "motions").mkdir(parents=True)
    np.save(babel / "motions" / "1.npy", rng.normal(size=(40, 22, 3)).astype(np.float32))
    seg = {"proc_label": "walk", "act_cat": ["walk"], "start_t": 0.0, "end_t": 1.0}
    ann = {
        "1": {"feat_p": "a/1.npz", "frame_ann": {"labels": [seg]}},
        "2": "not an object",
        "3": {"frame_ann": {"labels": [{**seg, "start_t": "soon"}]}},
        "4": {"frame_ann": {"labels": [{**seg, "end_t": float("inf")}]}},
        "5": {"frame_ann": {"labels": [{"act_cat": ["walk"]}]}},
        "6": {"feat_p": "/etc/6.npz", "frame_ann": {"labels": [seg]}},
    }
    (babel / "train.json").write_text(json.dumps(ann).replace("Infinity", "1e999"))
    assert main(["babel", "--root", str(babel), "--output", str(tmp_path / "b")]) == 0
    report = load_prepared(tmp_path / "b").report
    assert report["skipped"]["malformed annotation entry"] == {"count": 4, "first_ids": ["2", "3", "4", "5"]}
    assert report["skipped"]["missing motion file"]["first_ids"] == ["6"]  # absolute feat_p is not followed
    (babel / "val.json").write_text('{"1": {"frame_ann": ')
    assert main(["babel", "--root", str(babel), "--output", str(tmp_path / "b2")]) == 1
    assert re.search(r"annotation file .*val\.json: line 1, column \d+: not valid JSON", capsys.readouterr().err)
    (babel / "val.json").unlink()
    (babel / "classes.txt").write_bytes(b"walk\n\xff\n")
    assert main(["babel", "--root", str(babel), "--output", str(tmp_path / "b3"), "--class-names",
                 str(babel / "classes.txt")]) == 1
    assert "classes.txt is not UTF-8 text" in capsys.readouterr().err

    inter = tmp_path / "inter"
    for d in ("motions/person1", "motions/person2", "annots"):
        (inter / d).mkdir(parents=True)
    for cid in ("1", "2"):
        for person in ("person1", "person2"):
            np.save(inter / "motions" / person / f"{cid}.npy", rng.normal(size=(30, 22, 3)).astype(np.float32))
    (inter / "annots" / "1.txt").write_bytes(b"two people \xff shake hands.\n")
    (inter / "annots" / "2.txt").write_text("two people hug.\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["interhuman", "--root", str(inter), "--output", str(tmp_path / "i")]) == 0
    prepared = load_prepared(tmp_path / "i")
    assert list(prepared.dataset["train"]["captions"]) == [[], ["two people hug."]]
    assert prepared.report["skipped"]["unreadable or non-UTF-8 caption file (clip kept without its captions)"][
        "first_ids"] == ["1"]


# ---------------------------------------------------------------------------
# kill -9 while the output is written: complete or absent, never half-written
# ---------------------------------------------------------------------------
SYNTHETIC = ["synthetic", "--num-train", "6", "--num-validation", "2", "--num-test", "2"]


def _killed_mid_write(argv: list[str]) -> None:
    """Run ``main(argv)`` in a forked child that SIGKILLs itself right after the data files are written (where
    the statistics come next): deterministic, and no interpreter start-up."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    import motionpatch_processing.io as prepared_io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process: the child only writes files
        pid = os.fork()
    if pid == 0:  # child
        try:
            prepared_io.save_statistics = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                main(argv)
        finally:
            os._exit(3)  # only reached when the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"child exited with status {status}"


def test_killed_prepare_leaves_output_absent_or_complete(tmp_path):
    out = tmp_path / "out"
    _killed_mid_write([*SYNTHETIC, "--output", str(out)])
    assert not out.exists()
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.incomplete-")]
    assert len(partial) == 1 and (partial[0] / "dataset_dict.json").is_file()  # it did die mid-write
    assert not (partial[0] / "prepare_report.json").exists()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*SYNTHETIC, "--seed", "1", "--output", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the dead run's partial folder is removed
    first = json.loads((out / "prepare_report.json").read_text())
    (out / "notes.txt").write_text("mine")

    _killed_mid_write([*SYNTHETIC, "--seed", "2", "--output", str(out), "--overwrite"])
    assert json.loads((out / "prepare_report.json").read_text()) == first  # the earlier dataset, untouched
    assert load_prepared(out).report["parameters"]["seed"] == 1 and (out / "statistics.json").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*SYNTHETIC, "--seed", "3", "--output", str(out), "--overwrite"]) == 0
    assert load_prepared(out).report["parameters"]["seed"] == 3 and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not (out / ".replaced").exists()
