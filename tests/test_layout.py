"""The package's layering: ``mail/`` and ``sheets/`` meet only in ``formats`` and ``text``.

Why: ``mail/attachments`` used to import ``sheets.read`` (which files are spreadsheets)
while ``sheets/annotate`` imported ``mail.attachments`` (a safe file name), so neither
side could be read, tested or changed alone.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import intake

PACKAGE = Path(intake.__file__).parent
FORBIDDEN = {"mail": "intake.sheets", "sheets": "intake.mail"}


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, anywhere in it (lazy imports too), as absolute
    names: ``from ..sheets.read import x`` in intake/mail/a.py is "intake.sheets.read"."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            # "from .. import sheets" imports a module by its attribute name
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_imported_modules_resolves_relative_imports():
    assert "intake.sheets.read" in imported_modules(PACKAGE / "sheets" / "report.py")
    assert "intake.formats" in imported_modules(PACKAGE / "mail" / "attachments.py")


@pytest.mark.parametrize("side", sorted(FORBIDDEN))
def test_mail_and_sheets_do_not_import_each_other(side):
    forbidden = FORBIDDEN[side]
    offenders = {
        path.name: sorted(m for m in imported_modules(path)
                          if m == forbidden or m.startswith(forbidden + "."))
        for path in sorted((PACKAGE / side).glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("side", sorted(FORBIDDEN))
def test_importing_one_side_loads_nothing_of_the_other(side):
    """The same in a fresh interpreter, through every module each imports in turn."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"import intake.{side} as side\n"
        "for info in pkgutil.iter_modules(side.__path__):\n"
        f"    importlib.import_module('intake.{side}.' + info.name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith('{FORBIDDEN[side]}')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
