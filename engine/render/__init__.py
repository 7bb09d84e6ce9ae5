"""Presentation that runs headless: labels, number formats and matplotlib figures of a Trace.

Imports neither Qt nor torch (an import-linter contract), so the GUI and the command line share it.
"""
