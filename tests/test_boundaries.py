"""core/ is a library: it never imports Streamlit."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_streamlit() -> None:
    files = sorted((ROOT / "core").rglob("*.py"))
    assert files
    offenders = {
        str(f.relative_to(ROOT)): sorted(m for m in imported_modules(f) if m.split(".")[0] == "streamlit")
        for f in files
    }
    assert {f: m for f, m in offenders.items() if m} == {}


def test_core_never_imports_ui_or_app_pages() -> None:
    for f in (ROOT / "core").rglob("*.py"):
        assert not {m for m in imported_modules(f) if m.split(".")[0] in ("ui", "app_pages")}, f


def test_the_boundary_check_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom streamlit.runtime import x\n")
    assert "streamlit.runtime" in imported_modules(probe)
