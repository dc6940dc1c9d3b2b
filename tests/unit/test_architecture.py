"""STYLE §1, enforced: which modules may import pyrad, sqlalchemy and Twisted's network
layers, and that the core reads no environment, clock or randomness of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support import REPO

PACKAGES = [REPO / "radiusd", REPO / "admin_web"]
SOURCES = sorted(path for package in PACKAGES for path in package.rglob("*.py"))

# Who may import what (paths relative to the repository).
ALLOWED = {
    "pyrad": {"radiusd/codec.py"},
    "sqlalchemy": {"radiusd/store/"},
    "alembic": {"radiusd/store/"},
    "twisted.internet": {"radiusd/protocol.py", "radiusd/app.py", "admin_web/",
                         "radiusd/bench/"},
    "twisted.web": {"admin_web/"},
    "klein": {"admin_web/"},
}
# The pure core: no I/O, no clock, no randomness, no environment (STYLE §1, §7).
CORE = ["radiusd/decide.py", "radiusd/otp.py", "radiusd/passcode.py", "radiusd/model.py",
        "radiusd/settings.py", "radiusd/crypto.py", "radiusd/codec.py", "radiusd/dedup.py",
        "radiusd/clients.py", "radiusd/keyedhash.py", "radiusd/emergency/codes.py",
        "radiusd/emergency/rules.py", "radiusd/emergency/export.py", "radiusd/wire_text.py"]
FORBIDDEN_IN_CORE = {"os.environ", "datetime.now", "time.time", "secrets.token_bytes",
                     "os.urandom", "random.random"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_sources_were_found():
    assert len(SOURCES) > 20


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_only_the_allowed_modules_import(module):
    offenders = []
    for path in SOURCES:
        relative = _relative(path)
        if any(relative.startswith(allowed) for allowed in ALLOWED[module]):
            continue
        if any(name == module or name.startswith(module + ".") for name in _imports(path)):
            offenders.append(relative)
    assert offenders == [], f"{module} imported outside {sorted(ALLOWED[module])}"


@pytest.mark.parametrize("relative", CORE)
def test_core_reads_no_clock_randomness_or_environment(relative):
    tree = ast.parse((REPO / relative).read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            used.add(f"{node.value.id}.{node.attr}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            if isinstance(node.value.value, ast.Name):
                used.add(f"{node.value.attr}.{node.attr}")
    assert used & FORBIDDEN_IN_CORE == set()
