"""The house's walls: core/ never imports Streamlit nor the pages; fine-tuning and evaluation never import each
other, only the long-work home (core/lab/) uses both, and nothing below it imports it; pages reach what ui/resources
holds through it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What ui/resources.py makes once per process (the engine, the server clients, the settings, the history, the
# preferences, the job board): pages take it from there, never from core's own modules.
WRAPPED_BY_UI = ("core.engine", "core.servers", "core.config", "core.records", "core.preferences", "core.lab.board")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports; `from a import b` counts as `a` and as `a.b` (b may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def offenders(folder: str, forbidden: tuple[str, ...], root: Path = ROOT) -> dict[str, list[str]]:
    """Files under `folder` (relative to `root`) with the forbidden modules they import."""
    found = {}
    for f in sorted((root / folder).rglob("*.py")):
        bad = sorted(m for m in imported_modules(f) if any(within(m, p) for p in forbidden))
        if bad:
            found[str(f.relative_to(root))] = bad
    return found


def importing_both(root: Path = ROOT) -> list[str]:
    """Files of core/ outside core/lab/ that import both fine-tuning and evaluation."""
    both = []
    for f in sorted((root / "core").rglob("*.py")):
        if (root / "core" / "lab") in f.parents:
            continue
        modules = imported_modules(f)
        uses = [any(within(m, p) for m in modules) for p in ("core.finetune", "core.evaluation")]
        if all(uses):
            both.append(str(f.relative_to(root)))
    return both


def test_core_never_imports_streamlit() -> None:
    assert sorted((ROOT / "core").rglob("*.py"))
    assert offenders("core", ("streamlit",)) == {}


def test_core_never_imports_ui_or_app_pages() -> None:
    assert offenders("core", ("ui", "app_pages")) == {}


def test_finetune_and_evaluation_never_import_each_other_nor_the_lab() -> None:
    assert offenders("core/finetune", ("core.evaluation", "core.lab")) == {}
    assert offenders("core/evaluation", ("core.finetune", "core.lab")) == {}


def test_only_the_lab_imports_both_finetune_and_evaluation_and_nothing_else_in_core_imports_the_lab() -> None:
    assert importing_both() == []
    outside = {f: m for f, m in offenders("core", ("core.lab",)).items() if not f.startswith("core/lab/")}
    assert outside == {}


def test_pages_take_what_ui_resources_holds_from_it() -> None:
    assert offenders("app_pages", WRAPPED_BY_UI) == {}
    assert not {m for m in imported_modules(ROOT / "app.py") if any(within(m, p) for p in WRAPPED_BY_UI)}


def test_the_boundary_check_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom streamlit.runtime import x\nfrom core import adapters\n")
    assert {"streamlit.runtime", "core", "core.adapters"} <= imported_modules(probe)


@pytest.mark.parametrize(
    ("path", "code", "rule"),
    [
        ("core/finetune/x.py", "from core.evaluation import metrics\n", "finetune"),
        ("core/evaluation/x.py", "from core.finetune.datasets import Pair\n", "evaluation"),
        ("core/evaluation/x.py", "from core.lab import rounds\n", "evaluation"),
        ("core/x.py", "from core.finetune import modes\nfrom core.evaluation import report\n", "both"),
        ("core/x.py", "import core.lab.board\n", "lab"),
        ("app_pages/x.py", "from core.engine import EmbeddedEngine\n", "pages"),
        ("app_pages/x.py", "from core.lab.board import JobBoard\n", "pages"),
    ],
)
def test_each_rule_fails_when_broken(tmp_path: Path, path: str, code: str, rule: str) -> None:
    for folder in ("core/finetune", "core/evaluation", "core/lab", "app_pages"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(code)
    found = {
        "finetune": offenders("core/finetune", ("core.evaluation", "core.lab"), tmp_path),
        "evaluation": offenders("core/evaluation", ("core.finetune", "core.lab"), tmp_path),
        "both": importing_both(tmp_path),
        "lab": {f: m for f, m in offenders("core", ("core.lab",), tmp_path).items() if not f.startswith("core/lab/")},
        "pages": offenders("app_pages", WRAPPED_BY_UI, tmp_path),
    }
    assert path in found[rule]
