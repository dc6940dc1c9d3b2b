"""README is the admin's manual: short enough to read, complete where an admin needs it
(every setting, every config key, every command), and every figure dated (issue 20)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from radiusd import config, settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _markdown_files() -> list[Path]:
    """The project's own Markdown: the top level and every folder but .venv and caches."""
    found = []
    for folder, subfolders, names in os.walk(REPO):
        subfolders[:] = [name for name in subfolders
                         if not name.startswith(".") and name not in ("build", "node_modules")]
        found += [Path(folder) / name for name in names if name.endswith(".md")]
    return found


def test_readme_is_at_most_400_lines():
    """Issue 20 (README): the manual stays readable; the lab notebook lives in docs/."""
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 400


def test_readme_names_every_setting_with_its_default():
    """Issue 20 (README): the settings reference has a row for every `settings` key."""
    text = README.read_text(encoding="utf-8")
    for spec in settings.SPECS:
        rows = [line for line in text.splitlines() if line.startswith(f"| `{spec.key}` |")]
        assert len(rows) == 1, spec.key
        assert f"`{spec.default}`" in rows[0], (spec.key, rows[0])


def test_readme_names_every_config_key():
    """Issue 20 (README): every key of the config file appears in the manual."""
    text = README.read_text(encoding="utf-8")
    for section, keys in config._SECTIONS.items():
        for key in keys:
            spelled = f"`{key}`" if section == "clients" else f"`{section}.{key}`"
            assert spelled in text, spelled


def test_readme_links_the_performance_notes():
    text = README.read_text(encoding="utf-8")
    assert "(docs/performance.md)" in text
    assert (REPO / "docs" / "performance.md").exists()


def test_no_markdown_file_counts_work_sessions():
    """Issue 20 (README): figures carry dates and commits, not the numbers of work sessions."""
    pattern = re.compile(r"\b[Ss]ession(s)? [0-9]+\b")
    for path in _markdown_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not pattern.search(line), f"{path.name}:{number}: {line}"
