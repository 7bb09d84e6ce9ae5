"""The keys' labels along the top of a heatmap: flat while they fit, upright before any is dropped."""

from __future__ import annotations

import numpy as np

from gui.views.heatmap import Heatmap


def shown_columns(heatmap: Heatmap) -> list[str]:
    levels = heatmap.plot.getAxis("top")._tickLevels
    return [text for _, text in levels[0]] if levels else []


def test_labels_stand_up_instead_of_disappearing(qtbot):
    heatmap = Heatmap()
    qtbot.addWidget(heatmap)
    heatmap.resize(700, 300)
    heatmap.show()
    words = [f"▁canapé{i}" for i in range(20)]  # 20 columns of ~28 px: flat, only a few would fit
    heatmap.set_matrix(np.random.default_rng(0).random((5, 20)).astype(np.float32), [str(i) for i in range(5)], words)
    qtbot.waitUntil(lambda: heatmap.plot.getAxis("top").upright, timeout=5000)
    assert shown_columns(heatmap) == words  # every key keeps its label
    heatmap.set_matrix(np.eye(3, dtype=np.float32), ["a", "b", "c"], ["a", "b", "c"])
    qtbot.waitUntil(lambda: not heatmap.plot.getAxis("top").upright, timeout=5000)
    assert shown_columns(heatmap) == ["a", "b", "c"]
    image = heatmap.grab().toImage()
    assert not image.isNull()  # drawing the upright labels does not fail
