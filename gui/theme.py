"""Light and dark palettes, and the colours the plots take from them.

Heatmaps use viridis in both themes: it runs from dark violet to bright yellow, so a map stays
readable on a light or a dark background, and the plot frames follow the palette's text colour.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

COLOR_MAP = "viridis"
WEIGHT_LEVELS = (0.0, 1.0)  # attention weights are probabilities: one fixed scale for every map


def dark_palette() -> QPalette:
    palette = QPalette()
    window, base, text = QColor(37, 37, 40), QColor(28, 28, 30), QColor(226, 226, 228)
    palette.setColor(QPalette.ColorRole.Window, window)
    palette.setColor(QPalette.ColorRole.WindowText, text)
    palette.setColor(QPalette.ColorRole.Base, base)
    palette.setColor(QPalette.ColorRole.AlternateBase, window)
    palette.setColor(QPalette.ColorRole.ToolTipBase, base)
    palette.setColor(QPalette.ColorRole.ToolTipText, text)
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor(140, 140, 146))
    palette.setColor(QPalette.ColorRole.Text, text)
    palette.setColor(QPalette.ColorRole.Button, window)
    palette.setColor(QPalette.ColorRole.ButtonText, text)
    palette.setColor(QPalette.ColorRole.BrightText, QColor(255, 90, 90))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(64, 128, 216))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    palette.setColor(QPalette.ColorRole.Link, QColor(110, 170, 255))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 125))
    return palette


def light_palette() -> QPalette:
    return QApplication.style().standardPalette()


def apply_theme(dark: bool) -> None:
    """Switch the whole application; widgets restyle their plots on QEvent.PaletteChange."""
    app = QApplication.instance()
    app.setPalette(dark_palette() if dark else light_palette())


def is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightness() < 128


def plot_colors(widget: QWidget) -> tuple[QColor, QColor]:
    """(background, foreground) for a pyqtgraph widget inside `widget`."""
    palette = widget.palette()
    return palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)


def style_plot(plot, widget: QWidget) -> None:
    """A pyqtgraph PlotWidget's background and left/bottom axes in `widget`'s palette colours."""
    background, foreground = plot_colors(widget)
    plot.setBackground(background)
    for side in ("left", "bottom"):
        plot.getAxis(side).setPen(foreground)
        plot.getAxis(side).setTextPen(foreground)
