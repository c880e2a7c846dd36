"""The README's set-up commands are the ones CI runs, and the screenshot it shows exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r"^TEST_COMMAND='(.+)'$", ci, re.M)
    assert command is not None
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"\n{command.group(1)}\n" in readme


def test_readme_images_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images, "the README shows the real window"
    for image in images:
        assert (ROOT / image).is_file(), image
