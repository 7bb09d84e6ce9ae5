"""`--screenshot` renders the real window headless, and a missing Qt platform library is named in
one line instead of Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gui import platform_check
from gui.screenshot import parse_size

ROOT = Path(__file__).resolve().parents[2]
LDD_WITHOUT_ICCCM = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
"""


def test_missing_libraries_are_named_with_their_packages(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    problem = platform_check.platform_problem(ldd_output=LDD_WITHOUT_ICCCM)
    assert problem is not None and "\n" not in problem
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in problem  # each once, in ldd's order
    assert problem.endswith("sudo apt-get install libxcb-icccm4 libxcb-keysyms1")
    ok = "\tlibxcb-icccm.so.4 => /lib/x86_64-linux-gnu/libxcb-icccm.so.4 (0x7f)\n"
    assert platform_check.platform_problem(ldd_output=ok) is None


def test_no_display_is_said_before_qt_aborts(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "QT_QPA_PLATFORM=offscreen" in platform_check.platform_problem(ldd_output="")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert platform_check.platform_name() == "offscreen"


def test_the_app_exits_with_the_message_instead_of_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no display") and len(done.stderr.strip().splitlines()) == 1


def test_sizes_are_checked():
    assert parse_size("1366x768") == (1366, 768)
    for bad in ("1366", "ax768", "10x10", "1366x768x2"):
        with pytest.raises(ValueError, match="--size"):
            parse_size(bad)


@pytest.mark.slow
def test_screenshot_saves_the_translated_window_and_quits(tmp_path):
    from PySide6.QtGui import QImage

    out = tmp_path / "shot.png"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("QT_QPA_PLATFORM", None)  # --screenshot needs no display and chooses offscreen itself
    env.pop("DISPLAY", None)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "--text",
            "Je suis étudiant.",
            "--screenshot",
            str(out),
            "--size",
            "1366x768",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1366, 768)
    gray = image.convertToFormat(QImage.Format.Format_Grayscale8)  # kept alive while its bytes are read
    rows = np.array(gray.constBits(), dtype=np.uint8).reshape(gray.height(), gray.bytesPerLine())
    assert rows[:, : gray.width()].std() > 20  # maps, text and plots: not a blank window


@pytest.mark.slow
def test_a_saved_study_reopens_to_the_same_pixels(tmp_path):
    """--save-study with --text writes the study headless; opening it gives the same screenshot."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("QT_QPA_PLATFORM", None)

    def main(*args):
        done = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr

    text = "Il faut que tu viennes avec nous demain."
    main("--text", text, "--save-study", "s.study", "--screenshot", "a.png", "--size", "1366x768")
    main("s.study", "--screenshot", "b.png", "--size", "1366x768")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    bad = tmp_path / "bad.study"
    bad.write_bytes(b"not a study")
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), str(bad), "--screenshot", "c.png"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and done.stderr.startswith("error: bad.study: not a readable study file")
    assert not (tmp_path / "c.png").exists()
