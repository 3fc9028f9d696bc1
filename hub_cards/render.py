"""Render Hub cards (dataset cards, model cards) from the Jinja templates shipped in this package.

Generic on purpose: :func:`render_card` knows nothing about motion data. It loads
``hub_cards/<template_name>``, turns ``card_data`` into ``DatasetCardData`` / ``ModelCardData`` (the YAML
header; templates print it with ``{{ card_data }}``) and returns a ``huggingface_hub.DatasetCard`` or
``ModelCard`` that can be saved (``card.save(path)``) or pushed (``card.push_to_hub(repo_id)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CardData,
    DatasetCard,
    DatasetCardData,
    ModelCard,
    ModelCardData,
)

TEMPLATE_DIR = Path(__file__).resolve().parent


def template_path(template_name: str) -> Path:
    """Path of a template in this package (``"dataset_card"`` and ``"dataset_card.md"`` are the same)."""
    name = template_name if template_name.endswith(".md") else template_name + ".md"
    path = TEMPLATE_DIR / name
    if not path.is_file():
        available = sorted(p.name for p in TEMPLATE_DIR.glob("*.md"))
        raise ValueError(f"no card template {name!r} in {TEMPLATE_DIR}; available templates: {available}.")
    return path


def render_card(
    template_name: str,
    card_data: Mapping[str, Any] | CardData | None = None,
    card_type: str | None = None,
    **fields: Any,
) -> DatasetCard | ModelCard:
    """Render ``template_name`` with ``fields`` into a ``DatasetCard`` or ``ModelCard``.

    Args:
        template_name: file name in ``hub_cards/`` (``"dataset_card.md"``, ...).
        card_data: the YAML metadata (``license``, ``tags``, ``pretty_name``, ``configs``...), as a mapping or
            a ``CardData``.
        card_type: ``"dataset"`` or ``"model"``; by default ``"dataset"`` when the template name starts with
            ``dataset`` and ``"model"`` otherwise.
        **fields: variables of the Jinja template.
    """
    kind = card_type or ("dataset" if Path(template_name).name.startswith("dataset") else "model")
    if kind not in ("dataset", "model"):
        raise ValueError(f"card_type must be 'dataset' or 'model', got {card_type!r}.")
    card_cls, data_cls = (DatasetCard, DatasetCardData) if kind == "dataset" else (ModelCard, ModelCardData)
    if card_data is None:
        data = data_cls()
    elif isinstance(card_data, CardData):
        data = card_data
    else:
        data = data_cls(**dict(card_data))
    return card_cls.from_template(data, template_path=str(template_path(template_name)), **fields)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (``|`` in cells is escaped)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


__all__ = ["TEMPLATE_DIR", "markdown_table", "render_card", "template_path"]
