"""main.py's command line and the promise that torch stays off the path to the first paint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import main

ROOT = Path(__file__).resolve().parents[2]


def test_no_subcommand_means_the_gui():
    args = main.build_parser().parse_args([])
    assert args.command is None and args.model is None and args.device == "auto"
    assert args.handler is main.run_gui
    args = main.build_parser().parse_args(["--model", "some/dir", "--device", "cpu"])
    assert (args.model, args.device) == ("some/dir", "cpu")


def test_the_gui_subcommand_keeps_options_given_before_it():
    args = main.build_parser().parse_args(["--device", "cpu", "gui"])
    assert (args.command, args.device, args.model) == ("gui", "cpu", None)
    args = main.build_parser().parse_args(["gui", "--model", "m"])
    assert (args.command, args.model, args.device) == ("gui", "m", "auto")
    assert args.handler is main.run_gui


def test_the_window_paints_without_importing_torch(tmp_path):
    """Build and paint the window (no model load started): torch and the engine's model code stay unloaded."""
    code = f"""
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
import gui.app, gui.main_window
app = QApplication([])
window = gui.main_window.MainWindow(QSettings({str(tmp_path / "s.ini")!r}, QSettings.Format.IniFormat), autoload=False)
window.show()
window.grab()
app.processEvents()
print(sorted(m for m in ("torch", "engine.translator", "engine.checkpoint", "engine.model") if m in sys.modules))
window.close()
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_many_void_qt_calls_do_not_kill_the_interpreter():
    """PySide6 6.12.0 on Python 3.11 drops a reference to None per void call and aborts the
    interpreter within seconds of typing; pyproject.toml excludes it there. This guards the pin."""
    code = """
import os
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import gui
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
widget = QWidget()
for _ in range(300_000):
    widget.update()
print("alive")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "alive"
