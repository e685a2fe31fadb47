"""Meta-tests: every config key is documented in config.example.toml; the permission matrix doc is current."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel

from scanner.config import Config, parse_config
from scanner.permissions import COLLECTORS, STEPS, matrix_markdown

ROOT = Path(__file__).resolve().parents[2]


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for name, field in model.model_fields.items():
        if name == "source":
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(_keys(ann, name))
        else:
            out.append((prefix, name))
    return out


def test_config_example_documents_every_key_and_parses() -> None:
    text = (ROOT / "config.example.toml").read_text("utf-8")
    sections = {m.group(1): m.start() for m in re.finditer(r"^\[(\w+)\]", text, re.M)}
    for section, key in _keys(Config):
        assert section in sections, section
        start = sections[section]
        end = min([p for p in sections.values() if p > start] or [len(text)])
        assert re.search(rf"^#? ?{key} = ", text[start:end], re.M), f"{section}.{key} undocumented"
    parse_config(tomllib.loads(text))


def test_permission_doc_is_generated_from_the_matrix() -> None:
    assert (ROOT / "docs" / "permissions.md").read_text("utf-8").endswith(matrix_markdown())


def test_matrix_covers_every_collection_and_step() -> None:
    from scanner.config import STEP_NAMES
    from scanner.snapshot import COLLECTIONS

    assert set(COLLECTIONS) <= set(COLLECTORS)
    assert set(STEPS) == set(STEP_NAMES)
    assert all(n.permission and ".Write" not in n.permission and "ReadWrite" not in n.permission
               for needs in COLLECTORS.values() for n in needs), "scanning must stay read-only"
