"""Shared helpers of the benchmark scripts: interleaved timing, machine description, machine-readable output.

Every speed-up in ``benchmarks/README.md`` compares candidates timed by :func:`interleaved`: all candidates run in
the same process, round-robin, for the same number of rounds, so that a slow spell of a shared machine hits all of
them alike. A ratio is median over median, and the spread of the per-round ratios is shown beside it.

Each script writes its results with :func:`write_json` (``--json PATH``); ``benchmarks/run.py`` collects those
files and fills their markdown tables into ``benchmarks/README.template.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Timing:
    """Wall-clock (and process CPU) seconds of one candidate, one entry per round."""

    times: list[float]
    cpu_times: list[float] = field(default_factory=list)
    result: Any = None  # what the last call returned (for parity checks)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    @property
    def q1(self) -> float:
        return _quantile(self.times, 0.25)

    @property
    def q3(self) -> float:
        return _quantile(self.times, 0.75)

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_times) if self.cpu_times else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "rounds": len(self.times),
            "median_s": self.median,
            "min_s": self.min,
            "max_s": self.max,
            "q1_s": self.q1,
            "q3_s": self.q3,
            "iqr_s": self.iqr,
            "cpu_median_s": self.cpu_median,
            "times_s": list(self.times),
            "cpu_times_s": list(self.cpu_times),
        }


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) without numpy."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def interleaved(
    fns: Mapping[str, Callable[[], Any]],
    rounds: int,
    warmup: int = 1,
    rotate: bool = True,
    before_each: Callable[[str], Any] | None = None,
) -> dict[str, Timing]:
    """Time every candidate of ``fns`` round-robin in this process: ``rounds`` timed rounds, each calling every
    candidate once, after ``warmup`` untimed rounds of the same kind.

    With ``rotate`` the first candidate of round ``r`` is the ``r``-th (mod the count), so no candidate always runs
    right after the same other one. ``before_each(name)`` runs untimed before each call (e.g. to clear a cache).
    Returns ``{name: Timing}`` with one wall time (``time.perf_counter``) and one CPU time
    (``time.process_time``) per round, and the last call's return value.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(fns)
    if not names:
        raise ValueError("no candidates to time")
    out = {name: Timing(times=[], cpu_times=[]) for name in names}
    for r in range(warmup + rounds):
        order = names[r % len(names) :] + names[: r % len(names)] if rotate else names
        for name in order:
            if before_each is not None:
                before_each(name)
            w0, c0 = time.perf_counter(), time.process_time()
            result = fns[name]()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            out[name].result = result
            if r >= warmup:
                out[name].times.append(wall)
                out[name].cpu_times.append(cpu)
    return out


def ratio(baseline: Timing, ours: Timing, cpu: bool = False) -> dict[str, float]:
    """How many times faster ``ours`` is than ``baseline``: median over median, and the range of the ratios of
    the same rounds (both timed in each round by :func:`interleaved`)."""
    b = baseline.cpu_times if cpu else baseline.times
    o = ours.cpu_times if cpu else ours.times
    per_round = [x / y for x, y in zip(b, o) if y > 0]
    return {
        "ratio": statistics.median(b) / statistics.median(o),
        "round_min": min(per_round),
        "round_max": max(per_round),
    }


def fmt_ratio(r: Mapping[str, float]) -> str:
    """``'6.8x (5.9-7.4x)'``: median ratio and the range of the same-round ratios."""
    return f"{_num(r['ratio'])}x ({_num(r['round_min'])}-{_num(r['round_max'])}x)"


def _num(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def fmt_spread(t: Timing, scale: float = 1.0, unit: str = "s", digits: int = 3) -> str:
    """``'0.158 s (0.150-0.170)'``: median and min-max of the rounds (times ``scale``)."""
    return f"{t.median * scale:.{digits}f} {unit} ({t.min * scale:.{digits}f}-{t.max * scale:.{digits}f})".replace(
        "  ", " "
    )


def fmt_rate(count: float, t: Timing) -> str:
    """``'8,991 (7,950-9,400)'``: ``count`` per median second, and per the slowest-fastest round."""
    return f"{count / t.median:,.0f} ({count / t.max:,.0f}-{count / t.min:,.0f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` holds one of 'l' / 'r' per column (default: first left, others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _first_cpu() -> dict[str, str]:
    """The ``key: value`` fields of the first processor in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    return _first_cpu().get("model name") or platform.processor() or platform.machine() or "unknown"


#: instruction-set extensions that change these figures (int8 and bf16 kernels, wide vectors), as /proc/cpuinfo names them
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> set[str]:
    """The first processor's ``/proc/cpuinfo`` flags (empty where there is no such file)."""
    return set(_first_cpu().get("flags", "").split())


def cpu_isa() -> str | None:
    """The CPU's family/model and which of :data:`ISA_FLAGS` it has, e.g. ``'family 25 model 1; avx2'``: the same
    model name ("AMD EPYC") can hide generations with and without AVX-512, which moves int8 and bf16 figures."""
    fields = _first_cpu()
    if not fields:
        return None
    have = [f for f in ISA_FLAGS if f in cpu_flags()]
    return f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}; {', '.join(have) or 'no AVX2'}"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(extra_packages: Sequence[str] = ()) -> dict[str, Any]:
    """CPU model, logical CPUs, load average now, Python and library versions, date (UTC), GPU if torch sees one."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "isa": cpu_isa(),
        "logical_cpus": os.cpu_count(),
        "load_average": load_average(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    versions = {}
    for dist in ("torch", "numpy", "transformers", *extra_packages):
        versions[dist] = _version(dist)
    info["versions"] = versions
    if "torch" in sys.modules:  # only when the script already imported it (importing torch costs seconds)
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        try:
            if torch.cuda.is_available():
                info["gpu"] = torch.cuda.get_device_name(0)
        except Exception:  # pragma: no cover - no driver
            pass
    return info


def machine_line(info: Mapping[str, Any], load_end: Sequence[float] | None = None) -> str:
    """One line for a table's header: machine, date, load average (start and end), versions."""
    if info.get("recorded"):  # tables re-printed from a recorded run: its own description
        return str(info["recorded"])
    load = info.get("load_average")
    load_s = f"load average {load[0]:.2f}" if load else "load average n/a"
    if load_end:
        load_s += f" at the start, {load_end[0]:.2f} at the end"
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    isa = f" ({info['isa']})" if info.get("isa") else ""
    return (
        f"{info.get('cpu')}{isa}, {info.get('logical_cpus')} logical CPUs{gpu}; {info.get('date_utc')}; {load_s}; "
        f"Python {info.get('python')}, {versions}"
    )


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--quick`` (tiny sizes, seconds) and ``--json PATH`` (machine-readable results) for every script."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs (seconds)")
    parser.add_argument("--json", type=Path, default=None, help="write the tables and raw numbers here")


def command_line() -> str:
    """The command that ran this script, as a user would type it from the repository root."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


class Report:
    """Tables and raw numbers of one script run; ``write`` puts them in the JSON that ``run.py`` reads."""

    def __init__(self, name: str, quick: bool = False, extra_packages: Sequence[str] = ()):
        self.name = name
        self.quick = quick
        self.machine = machine_info(extra_packages)
        self.command = command_line()
        self.tables: dict[str, dict[str, Any]] = {}
        self.raw: dict[str, Any] = {}
        self.notes: list[str] = []

    def table(self, key: str, title: str, markdown: str, notes: Sequence[str] = ()) -> None:
        self.tables[key] = {"title": title, "markdown": markdown, "notes": list(notes)}
        print(f"\n### {title}\n\n{markdown}\n" + "".join(f"\n- {n}" for n in notes), flush=True)

    def write(self, path: Path | None) -> dict[str, Any]:
        if not self.machine.get("recorded"):
            self.machine["load_average_end"] = load_average()
        doc = {
            "name": self.name,
            "quick": self.quick,
            "command": self.command,
            "machine": self.machine,
            "tables": self.tables,
            "notes": self.notes,
            "raw": self.raw,
        }
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=1, default=_json_default))
        return doc


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)
