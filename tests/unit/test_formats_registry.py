"""The format registry: its static table agrees with the format modules."""

from __future__ import annotations

import importlib

import pytest

from ember import FormatError, formats


@pytest.mark.parametrize("name", sorted(formats.EXTENSIONS))
def test_table_matches_module(name: str) -> None:
    module = importlib.import_module(f"ember.formats.{name}")
    assert name == module.NAME
    assert formats.EXTENSIONS[name] == module.EXTENSIONS
    assert formats.by_name(name) is module
    for extension in module.EXTENSIONS:
        assert formats.for_path("out" + extension.upper()) is module


def test_unknown_names_and_extensions() -> None:
    with pytest.raises(FormatError, match="unknown format"):
        formats.by_name("bmp")
    with pytest.raises(FormatError, match="extension"):
        formats.for_path("out.bmp")
