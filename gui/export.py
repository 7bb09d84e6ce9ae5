"""File → Export, off the GUI thread.

When the user asks, the window freezes what to export into an ExportJob (the trace on screen, the
selection as an engine FigureRequest, the walkthrough); an Exporter then builds the figure with the
engine's one dispatcher (engine.render.figures.build_figure) and writes the jobs one after the other in a
pool of one thread, so a PDF that takes a second to render never freezes the window, and an
export asked for while another runs waits its turn instead of being lost. The figures are
`matplotlib.figure.Figure` objects (never pyplot), so building and saving them off the GUI thread is
safe; only one export runs at a time, so matplotlib is never used by two threads at once.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from engine.analysis import Analysis
from engine.render.request import FigureRequest, PositionalParams
from engine.trace import Trace
from engine.walkthrough import Walkthrough

log = logging.getLogger(__name__)

# what can be exported, as File → Export names it
EXPORTS = {
    "head": "Head view",
    "grid": "Model grid",
    "positional": "Positional encodings",
    "step": "Decoder step",
    "importance": "Head importance",
    "rollout": "Attention rollout",
    "value-norms": "Value norms",
    "walkthrough": "Walkthrough",
    "trace": "Trace data",
}
FIGURE_FILTER = "PNG image (*.png);;SVG vector image (*.svg);;PDF document (*.pdf)"
TRACE_FILTER = "NumPy archive (*.npz);;JSON (*.json)"
WALKTHROUGH_FILTER = "Figure (*.png *.svg *.pdf);;Table (*.csv *.json)"
NOTHING_YET = "nothing to export yet: type a sentence first"


@dataclass(frozen=True)
class ExportJob:
    """One export, with everything it needs frozen at the moment the user asked for it."""

    what: str  # a key of EXPORTS
    path: Path
    trace: Trace | None
    figure: FigureRequest | None = None  # the selection, for the figures engine.render.figures draws
    positional: PositionalParams | None = None  # a closed form to draw instead of the trace's rows
    walkthrough: Walkthrough | None = None
    analysis: Analysis | None = None  # the head analysis on screen, for the importance / rollout / value-norms figures
    dpi: int | None = None  # PNG only

    @property
    def title(self) -> str:
        return EXPORTS[self.what].lower()


def write_export(job: ExportJob) -> None:
    """Build and write one job; raises ExportError (or ValueError) with a one-line reason."""
    from engine.render.figures import ExportError, build_figure, save_figure  # matplotlib: on the first export
    from engine.render.walkthrough import save_walkthrough

    png_dpi = job.dpi if job.path.suffix.lower() == ".png" else None
    if job.what == "trace":
        if job.trace is None:
            raise ExportError(NOTHING_YET)
        if job.path.suffix.lower() not in (".npz", ".json"):
            raise ExportError(f"cannot write {job.path}: a trace is saved as .npz or .json")
        try:
            job.trace.save(job.path)
        except OSError as error:
            raise ExportError(f"cannot write {job.path}: {error.strerror or error}") from error
    elif job.what == "walkthrough":  # a figure, or its numbers as .csv / .json
        if job.walkthrough is None:
            raise ExportError("open the Walkthrough tab first: there is no walkthrough to export")
        save_walkthrough(job.walkthrough, job.path, dpi=png_dpi)
    elif job.figure is not None:
        save_figure(build_figure(job.trace, job.figure, job.positional, analysis=job.analysis), job.path, dpi=png_dpi)
    else:
        raise ValueError(f"unknown export {job.what!r}")


class _Relay(QObject):
    """Carries a finished job from the pool's thread to the Exporter (a queued connection)."""

    done = Signal(object, str)


class _ExportRun(QRunnable):
    def __init__(self, job: ExportJob, relay: _Relay) -> None:
        super().__init__()
        self.job, self.relay = job, relay

    def run(self) -> None:
        from engine.render.figures import ExportError

        try:
            write_export(self.job)
            error = ""
        except (ExportError, ValueError) as reason:  # one line, ready for the user
            error = str(reason)
        except Exception as reason:  # a bug must reach the user as a message, not kill the pool's thread
            log.exception("export failed")
            error = f"{type(reason).__name__}: {reason}"
        self.relay.done.emit(self.job, error)


class Exporter(QObject):
    """Runs ExportJobs one at a time off the GUI thread; the others wait in order."""

    started = Signal(object)  # ExportJob, as it begins
    finished = Signal(object, str)  # ExportJob, "" when written, else the one-line reason

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._waiting: deque[ExportJob] = deque()
        self._running: _ExportRun | None = None  # kept referenced while the pool runs it
        self._closed = False

    def submit(self, job: ExportJob) -> None:
        self._waiting.append(job)
        self._start_next()

    @property
    def running(self) -> ExportJob | None:
        return self._running.job if self._running is not None else None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self._running is not None or bool(self._waiting)

    def shutdown(self) -> None:
        """Finish every job asked for (the user expects those files), then stop; nothing is reported after."""
        self._closed = True
        runs = [_ExportRun(job, self._relay) for job in self._waiting]
        self._waiting.clear()
        for run in runs:
            self._pool.start(run)
        self._pool.waitForDone()

    def _start_next(self) -> None:
        if self._running is not None or not self._waiting or self._closed:
            return
        self._running = _ExportRun(self._waiting.popleft(), self._relay)
        self.started.emit(self._running.job)
        self._pool.start(self._running)

    @Slot(object, str)
    def _on_done(self, job: ExportJob, error: str) -> None:
        if self._closed:
            return
        self._running = None
        self.finished.emit(job, error)
        self._start_next()
