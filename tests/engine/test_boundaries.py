"""The engine stays free of Qt and of the gui package, so it runs headless and in other programs."""

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "gui")


def test_no_engine_module_imports_qt_or_gui():
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_the_whole_engine_loads_no_qt():
    code = (
        "import sys, engine.cli, engine.cli.export, engine.translator, engine.training.train, engine.training.evaluate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'gui')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ENGINE.parent, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_trace_and_positional_do_not_import_torch():
    """The GUI reads Traces before torch is loaded (fast start-up)."""
    code = "import sys, engine.trace, engine.positional; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ENGINE.parent, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
