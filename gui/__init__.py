"""The desktop app: PySide6 + pyqtgraph widgets, the worker thread and the view state.

Nothing in this package imports torch at module level: the window paints before the engine loads.
"""
