"""Fitting text into a figure's width: measured in the figures' font, wrapped word by word."""

from __future__ import annotations

from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

FONT_FAMILY = "DejaVu Sans"  # the figures' font (engine.render.figures.STYLE)
_MEASURE = TextToPath()


def _text_width(text: str, fontsize: float) -> float:
    """Inches that `text` takes in the figures' font: measured, since pieces vary a lot in width."""
    prop = FontProperties(family=FONT_FAMILY, size=fontsize)
    width, _, _ = _MEASURE.get_text_width_height_descent(text, prop, ismath=False)  # points
    return width / 72


def wrap_text(text: str, width_inches: float, fontsize: float) -> str:
    """Wrap a title to the figure's width so a long sentence never runs off the page."""
    room = max(1.0, width_inches - 0.3)
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if _text_width(candidate, fontsize) <= room:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while len(line) > 1 and _text_width(line, fontsize) > room:  # a word wider than the page
                cut = _longest_fitting_prefix(line, room, fontsize)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return "\n".join(lines)


def _longest_fitting_prefix(word: str, room: float, fontsize: float) -> int:
    low, high = 1, len(word)  # a prefix of `low` characters is kept even if it does not fit
    while low < high:
        middle = (low + high + 1) // 2
        if _text_width(word[:middle], fontsize) <= room:
            low = middle
        else:
            high = middle - 1
    return low
