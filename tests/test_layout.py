"""Every name lives in one module, modules import each other without cycles, the library stands alone, and the one Arrow motion writer is correct."""

from __future__ import annotations

import ast
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest

from motionpatch_processing.io import motion_storage, rows_table, write_arrow_splits
from motionpatch_processing.schema import SPLITS, motion_features

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "modeling_motionpatch"


PACKAGES = {"modeling_motionpatch": ROOT / "modeling_motionpatch", "motionpatch_processing": ROOT / "processing",
            "motionpatch_training": ROOT / "training"}


def _modules():
    """(dotted name, path, parsed tree) of every module of the three packages."""
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            dotted = ".".join((package, *parts))
            yield dotted.removesuffix(".__init__"), path, ast.parse(path.read_text(encoding="utf-8"))


def _defined(tree) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def test_modules_export_only_what_they_define():
    """No shims: ``__all__`` of a module (its package ``__init__`` aside) names only what that module defines, so
    every caller imports a name from where it is defined."""
    offenders = {}
    for dotted, path, tree in _modules():
        if path.name == "__init__.py":
            continue
        exported = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                         and any(getattr(t, "id", "") == "__all__" for t in n.targets)), [])
        foreign = sorted(set(exported) - _defined(tree))
        if foreign:
            offenders[dotted] = foreign
    assert not offenders, f"modules re-exporting names they do not define: {offenders}"


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (at module level or inside functions)."""
    modules = {dotted: (path, tree) for dotted, path, tree in _modules()}
    graph: dict[str, set[str]] = {}
    for dotted, (path, tree) in modules.items():
        package = dotted if path.name == "__init__.py" else dotted.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        graph[dotted] = {t for t in targets if t in modules and t != dotted}
    return graph


def test_no_import_cycle_between_modules():
    """The package modules import each other without a cycle (package ``__init__`` files aside: importing a
    submodule always runs its package's ``__init__``)."""
    graph = {m: {t for t in ts if not _is_package(t)} for m, ts in _import_graph().items() if not _is_package(m)}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [node, nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, stack + [node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


def _is_package(dotted: str) -> bool:
    return dotted in PACKAGES or dotted.endswith(".apps")


def test_library_never_imports_the_builders():
    """No import of the dataset builders or the training package anywhere in the library, lazy ones included."""
    builders = ("motionpatch_processing", "motionpatch_training", "processing", "training")
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in builders]
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                offenders += [f"{path.name}: import_module({node.args[0].value!r})"] if str(
                    node.args[0].value).split(".")[0] in builders else []
    assert not offenders, offenders


def _nested(motions):
    return pa.array([np.asarray(m, dtype=np.float32).tolist() for m in motions],
                    pa.list_(pa.list_(pa.list_(pa.float32()))))


def test_motion_storage_matches_nested_lists_for_ragged_and_odd_inputs():
    rng = np.random.default_rng(0)
    motions = [
        rng.normal(size=(5, 4, 3)),  # float64
        rng.normal(size=(3, 4, 3)).astype(np.float32)[::-1],  # negative strides
        np.zeros((0, 4, 3), np.float32),  # zero frames
        np.asfortranarray(rng.normal(size=(2, 4, 3)).astype(np.float32)),
    ]
    storage = motion_storage(motions, 4)
    assert storage.type == motion_features(4)["motion"]().storage_type
    assert storage.equals(_nested(motions))
    assert len(motion_storage([], 4)) == 0
    assert len(motion_storage(np.zeros((2, 6, 4, 3), np.float32), 4)) == 2  # a stacked array is a batch too


@pytest.mark.parametrize("bad", [np.zeros((3, 5, 3)), np.zeros((3, 4)), np.zeros((3, 4, 2))])
def test_motion_storage_names_the_motion_with_the_wrong_shape(bad):
    with pytest.raises(ValueError, match=r"motion 1 of the batch has shape .* expected \(frames, 4, 3\)"):
        motion_storage([np.zeros((2, 4, 3)), bad], 4)


def test_motion_storage_refuses_a_batch_its_offsets_cannot_address():
    huge = np.broadcast_to(np.zeros(1, np.float32), (2**31 // 66 + 1, 22, 3))  # a view: no memory
    with pytest.raises(ValueError, match="smaller batches"):
        motion_storage([huge], 22)


def test_write_arrow_splits_round_trips_rows_in_order(tmp_path):
    feats = motion_features(4)
    rng = np.random.default_rng(1)
    rows = []
    for i in range(7):
        split = SPLITS[i % 3]
        rows.append((split, {"id": f"c{i}", "motion": rng.normal(size=(i + 1, 4, 3)).astype(np.float32),
                             "fps": 20.0, "skeleton": "s", "captions": [f"caption {i}"], "labels": ["a", "b"][: i % 3],
                             "source": f"f{i}.bvh", "mirrored": bool(i % 2)}))
    dd = write_arrow_splits(iter(rows), feats, tmp_path, batch_size=2)
    assert list(dd) == list(SPLITS) and dd["train"].features == feats
    for split in SPLITS:
        expected = [r for s, r in rows if s == split]
        got = dd[split].with_format("numpy")
        assert list(got["id"]) == [r["id"] for r in expected]
        for row, want in zip(got, expected):
            np.testing.assert_array_equal(row["motion"], want["motion"])
            assert list(row["labels"]) == want["labels"] and bool(row["mirrored"]) == want["mirrored"]
    table = rows_table({k: [r[k] for _, r in rows] for k in feats}, feats)
    assert datasets.Dataset(table).features == feats
