"""Wiring of the head analysis (issue 18): the Analysis tab, the head view's Rollout / Value norms,
the coverage flag under the sentence, and the analysis figures of File → Export.

The analysis costs about 100 ms of CPU per 20-piece trace, nearly all of it importance by masking
(one batched pass per kind), so it is asked for only after a trace is on screen, and only while
someone looks at it: the Analysis tab is open (everything), or the head view draws rollout or value
norms (those alone, a few ms). The client asks under the trace's own request id, so a newer
keystroke makes it stale: the worker stops before the next layer and the client drops what arrives
late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from engine.render.request import ANALYSIS_FIGURES
from engine.trace import Trace
from gui.analysis_maps import flagged_pieces
from gui.views.analysis_view import AnalysisView

if TYPE_CHECKING:
    from engine.analysis import Analysis
    from gui.main_window import MainWindow


class AnalysisPanel(QObject):
    """Owns the Analysis tab and the analysis on screen; the window only adds it and reads `analysis`."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.view = AnalysisView(window.view_state)
        self.trace: Trace | None = None  # the trace the analysis on screen (or asked for) belongs to
        self.analysis: Analysis | None = None
        self._asked_for: tuple[Trace, bool] | None = None  # the trace last asked about, with importance or not
        window.tabs.addTab(self.view, "Analysis")
        client = window.client
        # connected after the window's own slots: the trace is painted before the analysis is asked for
        client.resultShown.connect(self._on_trace_shown)
        client.emptyShown.connect(lambda: self._on_trace_shown(None))
        client.analysisShown.connect(self._on_analysis)
        client.analysisFailed.connect(
            lambda message: window.statusBar().showMessage(f"Analysis failed: {message}", 8000)
        )
        window.tabs.currentChanged.connect(self._request)
        window.view_state.mapModeChanged.connect(self._request)
        window.export_menu.aboutToShow.connect(self._update_export_actions)

    @property
    def tab_open(self) -> bool:
        return self.window.tabs.currentWidget() is self.view

    @property
    def wanted(self) -> bool:
        """Someone looks at the analysis: its tab is open, or the head view draws rollout / value norms."""
        return self.tab_open or self.window.view_state.map_mode != "weights"

    def _on_trace_shown(self, result) -> None:
        self.trace = result.trace if result is not None else None
        self.analysis = None  # the old sentence's analysis never stays beside the new trace
        self._asked_for = None
        self._show()
        self._request()

    def _request(self, *_args) -> None:
        if self.trace is None or not self.wanted:
            return
        importance = self.tab_open  # the head view's modes need no masking pass
        if self._asked_for is not None and self._asked_for[0] is self.trace and (self._asked_for[1] or not importance):
            return  # asked already, for as much
        asked = self.window.client.analyze_shown(importance)
        self._asked_for = None if asked is None else (asked, importance)

    def _on_analysis(self, _trace: Trace, analysis: Analysis) -> None:
        # the client sends only the analysis of the trace on screen (older ones are dropped there)
        self.analysis = analysis
        self._show()

    def _show(self) -> None:
        self.view.show_analysis(self.trace, self.analysis)
        self.window.head_view.set_analysis(self.analysis)
        if self.trace is not None:
            self.window.sentence.show_coverage_flags(flagged_pieces(self.trace, self.analysis))

    def _update_export_actions(self) -> None:
        for what in ANALYSIS_FIGURES:
            ready = self.analysis is not None and (what != "importance" or bool(self.analysis.importance))
            self.window.export_actions[what].setEnabled(ready)
