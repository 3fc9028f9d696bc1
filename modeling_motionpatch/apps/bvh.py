"""A vectorised BVH reader: hierarchy, bulk MOTION parse and forward kinematics.

Why not a PyPI library: ``upc-pymotion`` (0.3.4) and ``bvhio`` (1.5.4) were tried on the shared
Bandai-Namco files. Both parse the MOTION section with a Python loop over frames (pymotion: ~2,700
frames/s for parse alone; bvhio: ~1,000 frames/s parse + FK, per-joint Python objects), far below the
50,000 frames/s this project needs, and pymotion assumes position channels come before rotation
channels in 6-channel joints. ``bvh`` (0.3) has no forward kinematics. So this module implements it.

Three separate steps, so that each can be timed and reused:

* :func:`parse_bvh` / :func:`parse_bvh_string` -> :class:`BVHData` (hierarchy + raw channel values).
  The hierarchy (a few hundred lines) is read token by token; the MOTION values are parsed in one bulk
  call (Arrow's C++ float parser over the whitespace-stripped buffer, no Python loop over frames).
* :func:`forward_kinematics` -> ``(T, J, 3)`` joint positions, vectorised over frames, for ANY channel
  order: rotation channels compose intrinsically in file order (``Zrotation Xrotation Yrotation`` ->
  ``R = Rz @ Rx @ Ry``), position channels on any joint replace the matching coordinates of its OFFSET.
  The only Python loop is over the levels of the joint tree (depth ~ 8), never over frames.
* :func:`read_bvh` = both, returning a :class:`BVHMotion` (positions float32, metres if ``scale`` says
  so, Y up) whose :meth:`BVHMotion.skeleton` derives a :class:`modeling_motionpatch.skeletons.Skeleton`.

Malformed files raise :class:`BVHError` (a ``ValueError``) naming the file, the line and how to fix it.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..skeletons import Skeleton
from .skeleton_hierarchy import skeleton_from_hierarchy

try:  # datasets depends on pyarrow, so it is always there in practice; numpy is the fallback
    import pyarrow as _pa
    import pyarrow.compute as _pc
except ImportError:  # pragma: no cover
    _pa = None
    _pc = None

logger = logging.getLogger(__name__)

__all__ = [
    "UP_AXES",
    "BVHData",
    "BVHError",
    "BVH_SKIP_REASONS",
    "BVHHierarchy",
    "bvh_skip_reason",
    "BVHMotion",
    "forward_kinematics",
    "forward_kinematics_batch",
    "fps_from_frame_time",
    "motion_from_data",
    "motion_for_skeleton",
    "parse_bvh",
    "parse_bvh_string",
    "read_bvh",
]


class BVHError(ValueError):
    """A BVH file is malformed or truncated (the message names the file, the line and the fix).

    ``reason`` is a short category (one of :data:`BVH_SKIP_REASONS`) under which importers count the file
    as skipped in their reports.
    """

    def __init__(self, message: str, reason: str = "malformed HIERARCHY"):
        super().__init__(message)
        self.reason = reason


#: the ``reason`` values of :class:`BVHError`
BVH_SKIP_REASONS = (
    "malformed HIERARCHY",
    "no MOTION section",
    "malformed MOTION header",
    "BVH file with 0 frames",
    "MOTION values do not match Frames x channels",
    "non-numeric MOTION value",
    "non-finite MOTION value",
)


def bvh_skip_reason(error: Exception) -> str:
    """The report category of a file that failed to import: ``BVHError.reason``, ``"unreadable file"`` for
    ``OSError``, else ``"malformed BVH file"``."""
    if isinstance(error, BVHError):
        return error.reason
    if isinstance(error, OSError):
        return "unreadable file"
    return "malformed BVH file"


UP_AXES = ("y", "z")
_AXIS = {"x": 0, "y": 1, "z": 2}
_WHITESPACE = b" \t\r\n\x0b\x0c"
_FLOAT_RE = re.compile(rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE)


# ---------------------------------------------------------------------------
# data classes
# ---------------------------------------------------------------------------
class _JointCount:
    """``num_joints`` = ``len(self.names)``."""

    names: tuple[str, ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)


class _FrameCount:
    """``num_frames`` = rows of the per-frame array named by ``_PER_FRAME``."""

    _PER_FRAME: ClassVar[str]

    @property
    def num_frames(self) -> int:
        return int(getattr(self, self._PER_FRAME).shape[0])


@dataclass(frozen=True, eq=False)
class BVHHierarchy(_JointCount):
    """The HIERARCHY section.

    Attributes:
        names: joint names in file (depth-first) order, so every parent precedes its children.
        parents: ``(J,)`` parent index of each joint, ``-1`` for the root.
        offsets: ``(J, 3)`` float64 OFFSETs in file units and axes.
        channels: per joint, its channel names in file order (``"Xposition"``, ``"Zrotation"`` ...).
        channel_start: ``(J,)`` index of each joint's first channel in a MOTION frame.
        end_site: ``(J,)`` bool, True for kept ``End Site`` entries (no channels).
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    channel_start: np.ndarray
    end_site: np.ndarray

    @property
    def num_channels(self) -> int:
        return int(sum(len(c) for c in self.channels))


@dataclass(frozen=True, eq=False)
class BVHData(_FrameCount):
    """A parsed BVH file before forward kinematics: hierarchy plus the raw ``(T, C)`` channel values."""

    _PER_FRAME: ClassVar[str] = "values"
    source: str
    hierarchy: BVHHierarchy
    frame_time: float
    values: np.ndarray  # (T, C) float64, channels in file order

    @property
    def fps(self) -> float:
        return fps_from_frame_time(self.frame_time)


@dataclass
class BVHMotion(_JointCount, _FrameCount):
    """Joint positions of a BVH file.

    Attributes:
        names: joint names (End Sites excluded unless ``keep_end_sites=True``).
        parents: ``(J,)`` int64 parent indices, ``-1`` for the root; parents precede children.
        offsets: ``(J, 3)`` float32 rest OFFSETs after ``scale`` and the up-axis conversion.
        positions: ``(T, J, 3)`` float32 world positions after ``scale`` and the up-axis conversion (Y up).
        fps: frame rate, ``1 / frame_time`` snapped to the nearest integer when within 1e-4 (relative).
        frame_time: the ``Frame Time`` of the file, in seconds.
        source: the file it was read from.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    positions: np.ndarray
    fps: float
    frame_time: float
    source: str = ""
    end_site: np.ndarray | None = field(default=None, repr=False)
    _PER_FRAME: ClassVar[str] = "positions"

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The joint names (``names``), under the attribute name the pipeline and the feature extractor read."""
        return self.names

    def skeleton(self, name: str, chains: Sequence[Sequence[int]] | None = None) -> Skeleton:
        """The :class:`Skeleton` of this hierarchy, its five chains derived automatically unless given.

        Left/right are read from the joint names, else from the rest offsets (positive X = left).
        The skeleton is not registered; call ``modeling_motionpatch.register_skeleton`` for that.
        """
        return skeleton_from_hierarchy(
            name, list(self.names), [int(p) for p in self.parents], offsets=self.offsets, chains=chains
        )


def fps_from_frame_time(frame_time: float) -> float:
    """``1 / frame_time``, snapped to the nearest integer when within 1e-4 relative (0.0333333 s -> 30.0).

    BVH exporters round ``Frame Time`` to ~6 digits; without snapping 30 fps would read as 30.00003 fps
    and frame-rate conversion would lose the last frame of some clips. 29.97 fps stays 29.97.
    """
    fps = 1.0 / frame_time
    r = round(fps)
    if r > 0 and abs(fps - r) <= 1e-4 * fps:
        return float(r)
    return fps


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------
_TOKEN_RE = re.compile(r"[{}]|[^\s{}]+")
_MOTION_RE = re.compile(rb"^[ \t]*MOTION\b", re.MULTILINE)
_FRAMES_RE = re.compile(rb"^[ \t]*Frames[ \t]*:?[ \t]*(\S*)[^\n]*\n?", re.MULTILINE | re.IGNORECASE)
_FRAME_TIME_RE = re.compile(rb"^[ \t]*Frame[ \t]+Time[ \t]*:?[ \t]*(\S*)[^\n]*\n?", re.MULTILINE | re.IGNORECASE)


def _line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


class _Tokens:
    """Tokens of the HIERARCHY text (braces are tokens of their own); line numbers computed on demand."""

    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.items: list[tuple[str, int, int]] = [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
        self.i = 0

    def line_at(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    @property
    def line(self) -> int:
        if self.i < len(self.items):
            return self.line_at(self.items[self.i][1])
        return self.line_at(len(self.text.rstrip()))

    def error(self, msg: str, pos: int | None = None) -> BVHError:
        line = self.line if pos is None else self.line_at(pos)
        return BVHError(f"{self.source}: line {line}: {msg}")

    def peek(self) -> str | None:
        return self.items[self.i][0] if self.i < len(self.items) else None

    def same_line(self) -> bool:
        """The next token is on the same line as the previous one."""
        if self.i == 0 or self.i >= len(self.items):
            return False
        return "\n" not in self.text[self.items[self.i - 1][2] : self.items[self.i][1]]

    def next(self, what: str) -> tuple[str, int]:
        if self.i >= len(self.items):
            raise self.error(
                f"the hierarchy ends while {what} was expected; the file is truncated or its braces are unbalanced."
            )
        tok, pos, _ = self.items[self.i]
        self.i += 1
        return tok, pos

    def expect(self, value: str, what: str | None = None) -> int:
        tok, pos = self.next(repr(value))
        if tok.upper() != value.upper():
            raise self.error(f"expected {what or repr(value)}, found {tok!r}.", pos)
        return pos

    def number(self, what: str) -> float:
        tok, pos = self.next(what)
        try:
            return float(tok)
        except ValueError:
            raise self.error(f"{what} must be a number, found {tok!r}.", pos) from None


_CHANNEL_NAMES = {f"{a}{kind}".lower(): f"{a.upper()}{kind}" for a in "xyz" for kind in ("position", "rotation")}


def _parse_hierarchy(text: str, source: str, keep_end_sites: bool) -> BVHHierarchy:
    tk = _Tokens(text, source)
    first = tk.peek()
    if first is None or first.upper() != "HIERARCHY":
        raise tk.error(f"a BVH file starts with 'HIERARCHY', found {first!r}. Is this a BVH file?")
    tk.next("HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[tuple[float, float, float]] = []
    channels: list[tuple[str, ...]] = []
    end_site: list[bool] = []

    def parse_joint(parent: int, kw_pos: int) -> None:
        # name: every token on the keyword's line before '{' (names with spaces are kept whole)
        parts = []
        while tk.peek() is not None and tk.peek() != "{" and tk.same_line():
            parts.append(tk.next("a joint name")[0])
        if not parts:
            raise tk.error("ROOT/JOINT without a name.", kw_pos)
        me = len(names)
        names.append(" ".join(parts))
        parents.append(parent)
        offsets.append((0.0, 0.0, 0.0))
        channels.append(())
        end_site.append(False)
        tk.expect("{", f"'{{' after joint {names[me]!r}")
        seen_offset = False
        while True:
            tok, pos = tk.next(f"'}}' closing joint {names[me]!r}")
            key = tok.upper()
            if key == "}":
                break
            if key == "OFFSET":
                offsets[me] = (tk.number("OFFSET x"), tk.number("OFFSET y"), tk.number("OFFSET z"))
                seen_offset = True
            elif key == "CHANNELS":
                ntok, npos = tk.next("the number of channels")
                if not ntok.isdigit():
                    raise tk.error(f"CHANNELS must be followed by a channel count, found {ntok!r}.", npos)
                chans = []
                for _ in range(int(ntok)):
                    ctok, cpos = tk.next(f"one of the {ntok} channels of joint {names[me]!r}")
                    canon = _CHANNEL_NAMES.get(ctok.lower())
                    if canon is None:
                        raise tk.error(
                            f"unknown channel {ctok!r} of joint {names[me]!r} (CHANNELS {ntok} declares {ntok} names); "
                            "expected Xposition, Yposition, Zposition, Xrotation, Yrotation or Zrotation.",
                            cpos,
                        )
                    chans.append(canon)
                channels[me] = tuple(chans)
            elif key == "JOINT":
                parse_joint(me, pos)
            elif key == "END":
                tk.expect("Site", "'Site' after 'End'")
                tk.expect("{", "'{' after 'End Site'")
                tk.expect("OFFSET", "'OFFSET' inside 'End Site'")
                off = (tk.number("OFFSET x"), tk.number("OFFSET y"), tk.number("OFFSET z"))
                tk.expect("}", "'}' closing 'End Site'")
                if keep_end_sites:
                    names.append(f"{names[me]}_end")
                    parents.append(me)
                    offsets.append(off)
                    channels.append(())
                    end_site.append(True)
            elif key in ("ROOT", "MOTION"):
                raise tk.error(f"found {tok!r} inside joint {names[me]!r}: a '}}' is missing above this line.", pos)
            else:
                raise tk.error(
                    f"unexpected {tok!r} in joint {names[me]!r}; expected OFFSET, CHANNELS, JOINT, End Site or '}}'.",
                    pos,
                )
        if not seen_offset:
            raise tk.error(f"joint {names[me]!r} has no OFFSET.", pos)

    tok, pos = tk.next("'ROOT'")
    if tok.upper() != "ROOT":
        raise tk.error(f"expected 'ROOT' after 'HIERARCHY', found {tok!r}.", pos)
    parse_joint(-1, pos)
    if tk.peek() is not None:
        tok, pos = tk.next("end of hierarchy")
        if tok.upper() == "ROOT":
            raise tk.error("a second ROOT: only single-skeleton BVH files are supported; split the file.", pos)
        raise tk.error(f"unexpected {tok!r} after the closing '}}' of the root joint.", pos)

    counts = np.array([len(c) for c in channels], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return BVHHierarchy(
        names=tuple(names),
        parents=np.asarray(parents, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.float64).reshape(-1, 3),
        channels=tuple(channels),
        channel_start=starts,
        end_site=np.asarray(end_site, dtype=bool),
    )


_HIERARCHY_CACHE: OrderedDict[tuple[bytes, bool], BVHHierarchy] = OrderedDict()
_HIERARCHY_CACHE_SIZE = 64


def _hierarchy_from_bytes(text: bytes, source: str, keep_end_sites: bool) -> BVHHierarchy:
    """Parse (or fetch from a small LRU cache keyed by the exact text) a HIERARCHY section.

    The files of a collection usually share one hierarchy; caching makes its parse free after the first
    file, and lets :func:`forward_kinematics` reuse its per-hierarchy plan.
    """
    key = (text, keep_end_sites)
    hit = _HIERARCHY_CACHE.get(key)
    if hit is not None:
        _HIERARCHY_CACHE.move_to_end(key)
        return hit
    h = _parse_hierarchy(text.decode("utf-8", "replace"), source, keep_end_sites)
    for arr in (h.parents, h.offsets, h.channel_start, h.end_site):
        arr.setflags(write=False)  # shared between files through the cache
    _HIERARCHY_CACHE[key] = h
    if len(_HIERARCHY_CACHE) > _HIERARCHY_CACHE_SIZE:
        _HIERARCHY_CACHE.popitem(last=False)
    return h


def _locate_bad_token(data: bytes, first_line: int) -> tuple[int, int, bytes] | None:
    """Slow path, only on error: (line, column, token) of the first value that is not a number."""
    for i, line in enumerate(data.split(b"\n")):
        for k, tok in enumerate(line.split()):
            if not _FLOAT_RE.fullmatch(tok):
                return first_line + i, k + 1, tok
    return None


def _parse_floats(data: bytes, source: str, first_line: int) -> np.ndarray:
    """All whitespace-separated numbers of ``data`` as float64, in one bulk parse (no Python loop)."""
    if _pa is not None:
        buf = np.frombuffer(data, dtype=np.uint8)
        ws = np.empty(buf.shape[0] + 2, dtype=bool)
        ws[0] = ws[-1] = True
        np.less_equal(buf, 32, out=ws[1:-1])  # whitespace and control characters separate values
        edges = np.flatnonzero(ws[:-1] != ws[1:])  # alternating token starts and ends
        lengths = edges[1::2] - edges[0::2]
        compact = data.translate(None, _WHITESPACE)
        if len(compact) != int(lengths.sum()):  # other control characters inside the numbers
            compact = buf[~ws[1:-1]].tobytes()
        big = len(compact) >= 2**31 - 1
        offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64 if big else np.int32)
        np.cumsum(lengths, out=offsets[1:])
        kind = _pa.large_string() if big else _pa.string()
        strings = _pa.Array.from_buffers(kind, lengths.shape[0], [None, _pa.py_buffer(offsets), _pa.py_buffer(compact)])
        try:
            return _pc.cast(strings, _pa.float64()).to_numpy(zero_copy_only=False)
        except (_pa.ArrowInvalid, ValueError):
            pass
    else:  # pragma: no cover
        try:
            return np.array(data.split(), dtype=np.float64)
        except ValueError:
            pass
    bad = _locate_bad_token(data, first_line)
    if bad is None:  # pragma: no cover
        raise BVHError(
            f"{source}: the MOTION values (from line {first_line}) contain a value that is not a number.",
            "non-numeric MOTION value",
        )
    line, col, tok = bad
    raise BVHError(
        f"{source}: line {line}, value {col}: {tok.decode('utf-8', 'replace')!r} is not a number. MOTION frames must "
        "hold only decimal numbers separated by whitespace (no commas as decimal separator).",
        "non-numeric MOTION value",
    )


#: bytes of MOTION text parsed at a time: the parse's temporaries (~8x the text) stay bounded for long takes
MOTION_CHUNK_BYTES = 1 << 20


def _parse_motion_values(data: bytes, start: int, expected: int, source: str, first_line: int) -> tuple[np.ndarray, int]:
    """The numbers of ``data[start:]`` parsed in chunks of about :data:`MOTION_CHUNK_BYTES` (cut at line ends)
    into one preallocated float64 array of ``expected`` values; returns ``(values, number found)`` (values past
    ``expected`` are counted, not kept). Peak memory: the values plus one chunk's temporaries."""
    view = memoryview(data)
    out = np.empty(expected, dtype=np.float64)
    found, pos, line = 0, start, first_line
    while pos < len(data):
        end = min(len(data), pos + MOTION_CHUNK_BYTES)
        if end < len(data):
            cut = data.rfind(b"\n", pos, end)
            end = cut + 1 if cut >= pos else (data.find(b"\n", end) + 1 or len(data))
        chunk = bytes(view[pos:end])
        values = _parse_floats(chunk, source, line)
        keep = max(0, min(values.shape[0], expected - found))
        out[found : found + keep] = values[:keep]
        found += values.shape[0]
        line += chunk.count(b"\n")
        pos = end
    return (out if found >= expected else out[:found]), found


def _frame_count(token: str) -> int:
    n = int(token) if token.isascii() and token.isdigit() else -1
    if n < 0:
        raise ValueError("'Frames:' must be followed by a non-negative integer")
    if n == 0:
        raise ValueError("'Frames: 0': the file holds no motion; re-export it with at least one frame")
    return n


def _frame_time(token: str) -> float:
    try:
        t = float(token)
    except ValueError:
        t = math.nan
    if not (t > 0 and math.isfinite(t)):
        raise ValueError("'Frame Time:' must be a positive number of seconds")
    return t


def _motion_header(
    data: bytes, regex: re.Pattern, pos: int, prev_line: int, source: str, what: str, convert: Callable[[str], Any]
) -> tuple[Any, int, int]:
    """``(value, end, line)`` of the ``Frames:`` / ``Frame Time:`` line expected right after ``pos``."""
    match = regex.search(data, pos)
    if match is None or data[pos : match.start()].strip() != b"":
        raise BVHError(
            f"{source}: line {prev_line + 1}: expected {what}; the file is truncated or malformed.",
            "malformed MOTION header",
        )
    line = _line_of(data, match.start())
    token = match.group(1).decode("utf-8", "replace")
    try:
        return convert(token), match.end(), line
    except ValueError as exc:
        reason = "BVH file with 0 frames" if "Frames: 0" in str(exc) else "malformed MOTION header"
        raise BVHError(f"{source}: line {line}: {exc}, found {token!r}.", reason) from None


def parse_bvh_string(
    text: str | bytes, source: str = "<string>", keep_end_sites: bool = False, strict: bool = True
) -> BVHData:
    """Parse BVH text (see :func:`parse_bvh`); ``source`` names it in error messages."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        data = data[3:]
    m = _MOTION_RE.search(data)
    if m is None:
        nlines = data.count(b"\n") + 1
        raise BVHError(
            f"{source}: no MOTION section (the file ends at line {nlines} without a line 'MOTION'); the file is "
            "truncated or not a BVH file. Re-export it or check the download.",
            "no MOTION section",
        )
    hierarchy = _hierarchy_from_bytes(data[: m.start()], source, keep_end_sites)

    n_frames, pos, frames_line = _motion_header(
        data, _FRAMES_RE, m.end(), _line_of(data, m.start()), source, "'Frames: <count>' after 'MOTION'", _frame_count
    )
    frame_time, pos, time_line = _motion_header(
        data, _FRAME_TIME_RE, pos, frames_line, source, "'Frame Time: <seconds>' after 'Frames:'", _frame_time
    )
    n_channels = hierarchy.num_channels
    expected = n_frames * n_channels
    values, found = _parse_motion_values(data, pos, expected, source, time_line + 1)
    if found != expected:
        if n_channels == 0:
            raise BVHError(
                f"{source}: line {time_line + 1}: the hierarchy declares no CHANNELS but the MOTION section holds "
                "values.",
                "MOTION values do not match Frames x channels",
            )
        complete = found // n_channels
        last_line = time_line + data.count(b"\n", pos) + (0 if data.endswith(b"\n") or len(data) == pos else 1)
        problem = "truncated" if found < expected else "longer than declared"
        msg = (
            f"{source}: MOTION declares Frames: {n_frames} x {n_channels} channels = {expected} values, but lines "
            f"{time_line + 1}-{last_line} hold {found} values ({complete} complete frames"
            f"{', plus a partial frame' if found % n_channels else ''}): the file is {problem}. "
            "Re-export it, or pass strict=False to keep the complete frames."
        )
        if strict or complete == 0:
            raise BVHError(msg, "MOTION values do not match Frames x channels")
        logger.warning("%s Keeping %d frames.", msg, min(complete, n_frames))
        n_frames = min(complete, n_frames)
        values = values[: n_frames * n_channels]
    values = values[: n_frames * n_channels].reshape(n_frames, n_channels)
    if not np.isfinite(values).all():
        flat = int(np.flatnonzero(~np.isfinite(values.ravel()))[0])
        f, c = divmod(flat, n_channels)
        j = int(np.searchsorted(hierarchy.channel_start, c, side="right") - 1)
        # joints without channels share a start with the next; take the last joint whose start <= c having channels
        while len(hierarchy.channels[j]) == 0 or c >= hierarchy.channel_start[j] + len(hierarchy.channels[j]):
            j -= 1
        raise BVHError(
            f"{source}: frame {f} (line {time_line + 1 + f} if one frame per line), channel "
            f"{hierarchy.channels[j][c - hierarchy.channel_start[j]]} of joint {hierarchy.names[j]!r} is "
            f"{values.ravel()[flat]}: MOTION values must be finite.",
            "non-finite MOTION value",
        )
    return BVHData(source=source, hierarchy=hierarchy, frame_time=frame_time, values=values)


def parse_bvh(path: str | os.PathLike, keep_end_sites: bool = False, strict: bool = True) -> BVHData:
    """Parse a BVH file: its hierarchy and its ``(T, C)`` MOTION values, without forward kinematics.

    Args:
        path: the ``.bvh`` file.
        keep_end_sites: keep ``End Site`` entries as joints named ``{parent}_end`` (no channels);
            by default they are dropped.
        strict: raise when the number of values differs from ``Frames:`` x channels (truncated file).
            With ``strict=False`` the complete frames are kept and a warning is logged.

    Raises:
        BVHError: (a ``ValueError``) naming the file and line for a missing HIERARCHY/MOTION section,
            unbalanced braces, unknown channels, a truncated MOTION section or non-numeric values.
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_bvh_string(data, source=path, keep_end_sites=keep_end_sites, strict=strict)


# ---------------------------------------------------------------------------
# forward kinematics
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Level:
    joints: np.ndarray  # joints of this depth
    parents: np.ndarray  # their parents
    grot: np.ndarray  # positions (within `joints`) of the joints whose world rotation is needed (non-leaves)
    steps: tuple  # per rotation step: tuple of (axis, rows in grot (slice or array), angle rows (array))


@dataclass(frozen=True)
class _FKPlan:
    levels: tuple[_Level, ...]
    pos_joint: np.ndarray  # position channels: joint, axis, column
    pos_axis: np.ndarray
    pos_col: np.ndarray
    rot_col: np.ndarray  # all rotation channel columns (rows of the angle table)


_PLANS: OrderedDict[int, tuple[BVHHierarchy, _FKPlan]] = OrderedDict()


def _fk_plan(h: BVHHierarchy) -> _FKPlan:
    """Index arrays for :func:`forward_kinematics`, computed once per hierarchy (J ~ 25: loops are over joints)."""
    hit = _PLANS.get(id(h))
    if hit is not None and hit[0] is h:
        return hit[1]
    parents = h.parents
    j = h.num_joints
    depth = np.zeros(j, dtype=np.int64)
    for k, p in enumerate(parents):
        if p >= 0:
            if p >= k:
                raise BVHError(f"joint {k} ({h.names[k]!r}) has parent {p}: parents must precede their children.")
            depth[k] = depth[p] + 1
    has_children = np.zeros(j, dtype=bool)
    has_children[parents[parents >= 0]] = True

    pos_joint, pos_axis, pos_col, rot_col = [], [], [], []
    rot_of: list[list[tuple[int, int]]] = [[] for _ in range(j)]  # per joint: (axis, angle row)
    for k, chans in enumerate(h.channels):
        start = int(h.channel_start[k])
        for i, name in enumerate(chans):
            axis = _AXIS[name[0].lower()]
            if name.endswith("position"):
                pos_joint.append(k)
                pos_axis.append(axis)
                pos_col.append(start + i)
            else:
                rot_of[k].append((axis, len(rot_col)))
                rot_col.append(start + i)

    levels = []
    for d in range(int(depth.max()) + 1):
        joints = np.flatnonzero(depth == d)
        grot = np.flatnonzero(has_children[joints])
        steps = []
        n_steps = max((len(rot_of[k]) for k in joints[grot]), default=0)
        for r in range(n_steps):
            groups = []
            members = [(g, rot_of[joints[g]][r]) for g in grot if r < len(rot_of[joints[g]])]
            for axis in sorted({ax for _, (ax, _) in members}):
                sel = [i for i, (g, (ax, _)) in enumerate(members) if ax == axis]
                # rows within the (len(grot), 3, 3, T) block of this level, and the angle rows they read
                rows = np.array([int(np.flatnonzero(grot == members[i][0])[0]) for i in sel], dtype=np.int64)
                angle_rows = np.array([members[i][1][1] for i in sel], dtype=np.int64)
                if rows.shape[0] == grot.shape[0] and np.array_equal(rows, np.arange(grot.shape[0])):
                    rows = slice(None)
                groups.append((axis, rows, angle_rows))
            steps.append(tuple(groups))
        levels.append(_Level(joints=joints, parents=parents[joints], grot=grot, steps=tuple(steps)))
    plan = _FKPlan(
        levels=tuple(levels),
        pos_joint=np.asarray(pos_joint, dtype=np.int64),
        pos_axis=np.asarray(pos_axis, dtype=np.int64),
        pos_col=np.asarray(pos_col, dtype=np.int64),
        rot_col=np.asarray(rot_col, dtype=np.int64),
    )
    _PLANS[id(h)] = (h, plan)
    if len(_PLANS) > _HIERARCHY_CACHE_SIZE:
        _PLANS.popitem(last=False)
    return plan


def _rotate_columns(m: np.ndarray, groups: tuple, cos: np.ndarray, sin: np.ndarray) -> None:
    """In place ``m = m @ R_axis(angle)`` for joint-major ``m`` ``(n, 3, 3, T)``.

    Right-multiplying by an elementary rotation about axis ``a`` mixes only the two other columns
    ``b = a + 1``, ``d = a + 2`` (mod 3): ``m_b' = c m_b + s m_d``, ``m_d' = c m_d - s m_b``.
    A matrix without a rotation channel at this step is left unchanged (angle 0).
    """
    for axis, rows, angle_rows in groups:  # at most three groups (one per axis)
        b, d = (axis + 1) % 3, (axis + 2) % 3
        c = cos[angle_rows][:, None, :]  # (n, 1, T)
        s = sin[angle_rows][:, None, :]
        mb = m[rows, :, b, :]
        md = m[rows, :, d, :]
        nb = mb * c
        nb += md * s
        nd = md * c
        nd -= mb * s
        m[rows, :, b, :] = nb
        m[rows, :, d, :] = nd


def _convert_up(arr: np.ndarray, up_axis: str) -> np.ndarray:
    """Rotate ``(..., 3)`` vectors from ``up_axis`` up to Y up (Z up: (x, y, z) -> (x, z, -y), a proper rotation)."""
    if up_axis == "y":
        return arr
    out = np.empty_like(arr)
    out[..., 0] = arr[..., 0]
    out[..., 1] = arr[..., 2]
    out[..., 2] = -arr[..., 1]
    return out


def _check_up_axis(up_axis: str) -> str:
    key = str(up_axis).lower()
    if key not in UP_AXES:
        raise ValueError(
            f"up_axis must be one of {UP_AXES} (the file's vertical axis; output is Y up), got {up_axis!r}."
        )
    return key


#: frames solved per forward-kinematics call (its float64 temporaries are ~150 bytes per joint and frame)
FK_CHUNK_FRAMES = 2048


def forward_kinematics(
    data: BVHData,
    scale: float = 1.0,
    up_axis: str = "y",
    dtype: np.dtype | type = np.float32,
    compute_dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """World positions ``(T, J, 3)`` of every joint of a parsed BVH file.

    Each joint's local transform is a translation (its OFFSET, with the coordinates that have position
    channels replaced by those channels) and a rotation, the intrinsic composition of its rotation
    channels in file order (``Zrotation Xrotation Yrotation`` -> ``R = Rz Rx Ry``, angles in degrees).
    World: ``p_j = p_parent + G_parent t_j``, ``G_j = G_parent R_j``, where ``G_parent R_j`` is computed
    by applying ``R_j``'s elementary rotations to the columns of ``G_parent`` (no 3x3 products).
    Vectorised over frames; the Python loop runs over the depth levels of the tree (~8), not over frames.

    Args:
        data: the output of :func:`parse_bvh`.
        scale: factor applied to all lengths (0.01: centimetres -> metres).
        up_axis: the file's vertical axis, ``"y"`` (kept) or ``"z"`` (rotated to Y up: (x, y, z) -> (x, z, -y)).
        dtype: output dtype.
        compute_dtype: precision of the computation; float64 by default. float32 is ~20 % faster on the
            Bandai files and differs by < 2e-6 m from float64 there.
    """
    up_axis = _check_up_axis(up_axis)
    h = data.hierarchy
    t, j = data.values.shape[0], h.num_joints
    if t > FK_CHUNK_FRAMES:  # frames are independent: long takes in bounded memory, one chunk at a time
        out = np.empty((t, j, 3), dtype=dtype)
        for s in range(0, t, FK_CHUNK_FRAMES):
            part = BVHData(data.source, h, data.frame_time, data.values[s : s + FK_CHUNK_FRAMES])
            out[s : s + FK_CHUNK_FRAMES] = forward_kinematics(part, scale, up_axis, dtype, compute_dtype)
        return out
    plan = _fk_plan(h)
    ft = np.dtype(compute_dtype)
    vt = np.ascontiguousarray(data.values.T, dtype=ft)  # (C, T): one contiguous row per channel

    trans = np.empty((j, 3, t), dtype=ft)  # local translations
    trans[...] = h.offsets[:, :, None]
    if plan.pos_col.size:
        trans[plan.pos_joint, plan.pos_axis, :] = vt[plan.pos_col]
    angles = np.deg2rad(vt[plan.rot_col])
    cos, sin = np.cos(angles), np.sin(angles)

    pos = np.empty((j, 3, t), dtype=ft)
    glob = np.empty((j, 3, 3, t), dtype=ft)  # world rotations (only non-leaf joints are filled)
    for lvl in plan.levels:
        if lvl.parents[0] < 0:  # the root level
            pos[lvl.joints] = trans[lvl.joints]
            g = np.zeros((lvl.grot.shape[0], 3, 3, t), dtype=ft)
            g[:, 0, 0] = g[:, 1, 1] = g[:, 2, 2] = 1.0
        else:
            gp = glob[lvl.parents]  # (n, 3, 3, T)
            tj = trans[lvl.joints][:, None]  # (n, 1, 3, T)
            p = pos[lvl.parents]
            p += gp[:, :, 0] * tj[:, :, 0]
            p += gp[:, :, 1] * tj[:, :, 1]
            p += gp[:, :, 2] * tj[:, :, 2]
            pos[lvl.joints] = p
            if lvl.grot.shape[0] == 0:
                continue
            g = gp if lvl.grot.shape[0] == lvl.joints.shape[0] else gp[lvl.grot]
        for groups in lvl.steps:
            _rotate_columns(g, groups, cos, sin)
        glob[lvl.joints[lvl.grot]] = g
    out = pos.transpose(2, 0, 1)  # (T, J, 3)
    if scale != 1.0:
        out = out * scale
    return np.ascontiguousarray(_convert_up(out, up_axis), dtype=dtype)


def forward_kinematics_batch(
    datas: Sequence[BVHData],
    scale: float = 1.0,
    up_axis: str = "y",
    dtype: np.dtype | type = np.float32,
    max_frames: int = 8192,
) -> list[np.ndarray]:
    """:func:`forward_kinematics` of many parsed files, batching files that share a hierarchy.

    Frames are independent, so the channel values of files with the same (cached) hierarchy are
    concatenated into chunks of about ``max_frames`` frames and solved in one call each, which removes
    most of the per-call overhead on short clips. Returns one ``(T_i, J, 3)`` array per input, in order.
    """
    out: list[np.ndarray | None] = [None] * len(datas)
    groups: OrderedDict[int, list[int]] = OrderedDict()
    for i, d in enumerate(datas):
        groups.setdefault(id(d.hierarchy), []).append(i)
    for members in groups.values():
        chunk: list[int] = []
        frames = 0
        for k, i in enumerate(members):
            chunk.append(i)
            frames += datas[i].num_frames
            if frames >= max_frames or k == len(members) - 1:
                first = datas[chunk[0]]
                if len(chunk) == 1:
                    out[chunk[0]] = forward_kinematics(first, scale=scale, up_axis=up_axis, dtype=dtype)
                else:
                    values = np.concatenate([datas[c].values for c in chunk], axis=0)
                    joined = BVHData(first.source, first.hierarchy, first.frame_time, values)
                    pos = forward_kinematics(joined, scale=scale, up_axis=up_axis, dtype=dtype)
                    bounds = np.cumsum([datas[c].num_frames for c in chunk])[:-1]
                    for c, part in zip(chunk, np.split(pos, bounds, axis=0)):
                        out[c] = part
                chunk, frames = [], 0
    return out  # type: ignore[return-value]


def read_bvh(
    path: str | os.PathLike, scale: float = 1.0, up_axis: str = "y", keep_end_sites: bool = False, strict: bool = True
) -> BVHMotion:
    """Read a BVH file into joint positions: :func:`parse_bvh` then :func:`forward_kinematics`.

    Args:
        path: the ``.bvh`` file.
        scale: length factor (0.01 converts centimetres to metres).
        up_axis: ``"y"`` or ``"z"``: the file's vertical axis; positions are returned Y up.
        keep_end_sites: keep ``End Site`` entries as joints ``{parent}_end``; dropped by default.
        strict: see :func:`parse_bvh`.
    """
    data = parse_bvh(path, keep_end_sites=keep_end_sites, strict=strict)
    return motion_from_data(data, scale=scale, up_axis=up_axis)


def motion_from_data(data: BVHData, scale: float = 1.0, up_axis: str = "y") -> BVHMotion:
    """Forward kinematics of a parsed file, wrapped in a :class:`BVHMotion`."""
    positions = forward_kinematics(data, scale=scale, up_axis=up_axis)
    h = data.hierarchy
    offsets = _convert_up(h.offsets * scale, _check_up_axis(up_axis)).astype(np.float32)
    return BVHMotion(
        names=h.names,
        parents=h.parents.copy(),
        offsets=offsets,
        positions=positions,
        fps=data.fps,
        frame_time=data.frame_time,
        source=data.source,
        end_site=h.end_site.copy(),
    )


# ---------------------------------------------------------------------------
# a BVH motion on the model's skeleton: joints by name, units and up axis detected
# ---------------------------------------------------------------------------
def detect_scale_and_up(
    positions: np.ndarray, pelvis: int, head: int, where: str = "the motion", up_axis: str | None = None
) -> tuple[float, str]:
    """``(scale, up_axis)`` of ``(T, J, 3)`` positions from the pelvis -> head vector over the frames.

    Up axis: the axis of the mean pelvis -> head direction (``"y"`` or ``"z"``; anything else is an error).
    Scale: from the median pelvis -> head distance ``d`` (about 0.6 m for an adult): ``d <= 10`` -> metres (1.0),
    ``d <= 100`` -> centimetres (0.01), else millimetres (0.001). Measured on the frames, not on the rest OFFSETs:
    rigs such as Bandai-Namco's lay their bones along local X in the rest pose. A given ``up_axis`` is kept.
    """
    v = positions[:, head] - positions[:, pelvis]
    mean = v.mean(axis=0)
    axis = int(np.argmax(np.abs(mean))) if up_axis is None else _AXIS[_check_up_axis(up_axis)]
    if up_axis is None and (mean[axis] <= 0 or axis == 0):
        raise ValueError(
            f"{where}: the head is on average along {'-+'[int(mean[axis] > 0)]}{'xyz'[axis]} from the pelvis "
            f"({np.round(mean, 3).tolist()}), so its up axis is neither +Y nor +Z. Pass up_axis='y' or 'z' (the "
            "file's vertical axis) explicitly, or check the joint mapping."
        )
    d = float(np.median(np.linalg.norm(v, axis=-1)))
    scale = 1.0 if d <= 10 else 0.01 if d <= 100 else 0.001
    return scale, "xyz"[axis]


def motion_for_skeleton(
    motion: Any,
    skeleton: Any = "humanml3d",
    scale: float | None = None,
    up_axis: str | None = None,
    joint_map: Any = None,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """A ``.bvh`` path or a loaded motion (``.positions``, ``.joint_names`` or ``.names``, ``.fps``; e.g. what
    :func:`read_bvh` returns) -> ``(positions, fps, info)`` on the model's skeleton: joints mapped by name
    (:func:`modeling_motionpatch.apps.joint_maps.joint_map_matrix`), metres, Y up, at the file's frame rate.

    ``scale`` / ``up_axis`` override the detection (:func:`detect_scale_and_up`); they apply to the positions as
    given (a motion read with ``read_bvh(path, scale=0.01)`` is already in metres and is detected as such).
    ``info`` holds the rig, scale and up axis used.
    """
    from .joint_maps import joint_map_matrix
    from ..skeletons import get_skeleton

    if isinstance(motion, (str, os.PathLike)):
        if not os.path.isfile(motion):
            raise ValueError(f"{os.fspath(motion)}: no such BVH file.")
        data = parse_bvh(motion)
        where, names, fps = data.source, data.hierarchy.names, data.fps
        positions = forward_kinematics(data)
    else:
        names = getattr(motion, "joint_names", None) or getattr(motion, "names", None)
        positions, fps = getattr(motion, "positions", None), getattr(motion, "fps", None)
        where = getattr(motion, "source", "") or f"a {type(motion).__name__}"
        if names is None or positions is None or fps is None:
            raise ValueError(
                f"{where} is not a BVH motion: expected a .bvh path or an object with .positions (frames, joints, 3), "
                ".joint_names (or .names) and .fps, such as what read_bvh returns."
            )
    skel = get_skeleton(skeleton)
    w, rig = joint_map_matrix(list(names), skel, joint_map)
    arr = np.asarray(positions, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (len(names), 3):
        raise ValueError(
            f"{where}: positions of shape {arr.shape} for {len(names)} joints; expected (frames, {len(names)}, 3)."
        )
    mapped = np.matmul(w, arr)
    pelvis = skel.parents.index(-1)
    head = next((k for k, n in enumerate(skel.joint_names) if "head" in n.lower()), skel.chains[2][-1])
    found_scale, up_axis = detect_scale_and_up(mapped, pelvis, head, where, up_axis)
    scale = found_scale if scale is None else float(scale)
    if not 0 < scale < math.inf:
        raise ValueError(f"scale must be a positive, finite length factor (0.01: centimetres -> metres), got {scale!r}.")
    out = _convert_up(mapped * np.float32(scale), up_axis)
    return np.ascontiguousarray(out, dtype=np.float32), float(fps), {"rig": rig, "scale": scale, "up_axis": up_axis}
