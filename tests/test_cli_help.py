"""Every console script answers ``--help`` with its usage (exit 0), without a traceback.

argparse formats help strings with ``%``: a help text holding a bare ``%`` made ``motionpatch-train --help`` and
``motionpatch-demo --help`` crash with ``TypeError: %o format``.
"""

from __future__ import annotations

import configparser
import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def console_scripts() -> list[tuple[str, str]]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options.entry_points"]["console_scripts"].splitlines() if ln.strip()]
    return [tuple(part.strip() for part in ln.split("=", 1)) for ln in lines]


def test_every_console_script_is_listed():
    names = [name for name, _ in console_scripts()]
    assert "motionpatch-train" in names and "motionpatch-demo" in names and len(names) >= 8


@pytest.mark.parametrize("name,target", console_scripts())
def test_help_exits_cleanly(name, target, monkeypatch, capsys):
    module, func = target.split(":")
    main = getattr(importlib.import_module(module), func)
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "usage" in out.lower() and len(out) > 100, out
