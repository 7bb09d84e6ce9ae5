"""Before Qt starts: can its platform plugin load? Qt itself aborts with a long message that names the
plugin but not the missing system libraries; this names them, and the Debian/Ubuntu packages that
hold them, in one line. Imports no Qt (it runs before Qt is loaded) and only reads files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# the shared libraries Qt's xcb and offscreen plugins load, by the Debian/Ubuntu package that holds them
PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
}


def platform_name() -> str:
    """The platform plugin Qt will try: QT_QPA_PLATFORM, else xcb under X11 (wayland when only Wayland is there)."""
    chosen = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0]
    if chosen:
        return chosen
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return "wayland"
    return "xcb"


def plugin_path(platform: str) -> Path | None:
    """The platform plugin's file inside the installed PySide6, found without importing Qt."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "Qt" / "plugins" / "platforms" / f"libq{platform}.so"
        if path.is_file():
            return path
    return None


def missing_libraries(plugin: Path, ldd_output: str | None = None) -> list[str]:
    """The libraries `ldd` reports as "not found" for the plugin (and what it loads), each once."""
    if ldd_output is None:
        ldd = shutil.which("ldd")
        if ldd is None:
            return []
        try:
            ldd_output = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return []
    missing = [line.split("=>")[0].strip() for line in ldd_output.splitlines() if "not found" in line]
    return list(dict.fromkeys(missing))


def platform_problem(ldd_output: str | None = None) -> str | None:
    """One line saying why Qt cannot open a window here, or None when nothing is known to be wrong."""
    if not sys.platform.startswith("linux"):
        return None
    platform = platform_name()
    if platform == "xcb" and not os.environ.get("DISPLAY"):
        return (
            "no display to open the window on: run it in a desktop session (DISPLAY is not set), "
            "or headless with QT_QPA_PLATFORM=offscreen, e.g. with --screenshot"
        )
    plugin = plugin_path(platform)
    if plugin is None:
        return None
    missing = missing_libraries(plugin, ldd_output)
    if not missing:
        return None
    packages = sorted({PACKAGES.get(name, name) for name in missing})
    return (
        f"Qt's {platform} platform plugin cannot load: missing {', '.join(missing)}; "
        f"on Debian/Ubuntu: sudo apt-get install {' '.join(packages)}"
    )
