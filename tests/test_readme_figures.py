"""Every figure section of the README names the command and the commit or hash that produced it (#17)."""

from __future__ import annotations

import re

import pytest

from bot.settings import PROJECT_ROOT

COMMAND = re.compile(r"`(?:make [a-z-]+|(?:\.venv/bin/)?python -m benchmarks\.[a-z_]+)[^`]*`")
PROVENANCE = re.compile(r"commit [0-9a-f]{7}\b|`[0-9a-f]{12}`")


def measured_sections() -> dict[str, str]:
    """The README's "## Measured" subsections: title -> text."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    measured = text.split("\n## Measured\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (.+)$", measured, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_readme_has_figure_sections() -> None:
    assert len(measured_sections()) >= 8


@pytest.mark.parametrize("title", sorted(measured_sections()))
def test_each_figure_section_names_its_command_and_provenance(title: str) -> None:
    section = measured_sections()[title]
    assert COMMAND.search(section), f"README '{title}': name the command that produced the figures"
    assert PROVENANCE.search(section), (f"README '{title}': name the commit (commit abc1234) or the "
                                        "data / model hash (`0123456789ab`) the figures come from")
