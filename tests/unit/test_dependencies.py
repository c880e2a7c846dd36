"""pyproject's bounds: the libraries whose private parts Hearth uses have an upper bound, and the
installed versions (the ones the tests ran against) fall inside every bound."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
REACHED_INTO = ("llama-cpp-python", "huggingface_hub")  # Llama._ctx/_model; huggingface_hub.utils


def requirements() -> dict[str, Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found = [Requirement(r) for r in data["project"]["dependencies"]]
    return {metadata.distribution(r.name).metadata["Name"].lower().replace("_", "-"): r for r in found}


@pytest.mark.parametrize("name", REACHED_INTO)
def test_libraries_reached_into_have_an_upper_bound(name: str) -> None:
    req = requirements()[name.lower().replace("_", "-")]
    assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), f"{req} has no upper bound"


def test_the_installed_versions_are_inside_the_bounds() -> None:
    outside = {
        str(req): metadata.version(req.name)
        for req in requirements().values()
        if not req.specifier.contains(metadata.version(req.name), prereleases=True)
    }
    assert outside == {}
