"""The one size formatter: decimal SI units everywhere (issue 12, item 10)."""

from __future__ import annotations

import pytest

from app.core.units import format_bytes, format_rate


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "size unknown"),
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1_000, "1 kB"),
        (33_400, "33 kB"),
        (253_113_024, "253 MB"),  # the starter model, in the picker and the Library alike
        (999_600_000, "1.0 GB"),  # never "1000 MB"
        (12_109_566_560, "12.1 GB"),  # gpt-oss-20b-mxfp4.gguf, as Hugging Face shows it
        (70_512_000_000, "70.5 GB"),
        (2_500_000_000_000, "2.5 TB"),
    ],
)
def test_format_bytes(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


def test_format_rate() -> None:
    assert format_rate(42_000_000) == "42 MB/s"
    assert format_rate(0) == ""


def test_the_planner_catalog_and_cli_use_the_same_formatter() -> None:
    """No module keeps a formatter of its own (there were three, in two unit conventions)."""
    import inspect

    from app import cli, cli_models
    from app.core import catalog, planner
    from app.gui import model_picker
    from app.gui.library import widgets

    assert widgets.size_text is format_bytes
    assert cli_models.format_bytes is format_bytes
    assert not hasattr(model_picker, "human_size")
    assert planner._gb(12_109_566_560) == "12.1 GB"
    for module in (cli, catalog, planner):
        source = inspect.getsource(module).replace(" ", "")
        assert "/gb:.1f}GB" not in source and "/GIB:.1f}GB" not in source, module.__name__
        assert "/1024**3:.1f}GB" not in source, module.__name__
