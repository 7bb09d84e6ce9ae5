"""The training log (training_log.csv beside a model) drawn as a PNG curve for the model card."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from engine.render.figures import STYLE, save_figure


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def training_curve(rows: list[dict[str, str]], title: str) -> Figure:
    """Dev BLEU (left axis) and training loss (right axis) against steps; averaged checkpoints as stars."""
    single = [r for r in rows if r["checkpoint"] == "single"]
    averaged = [r for r in rows if r["checkpoint"] != "single"]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.0, 3.6), layout="constrained")
        ax = fig.add_subplot()
        steps = [int(r["step"]) for r in single]
        ax.plot(steps, [float(r["dev_bleu"]) for r in single], marker="o", markersize=3, label="dev BLEU")
        if averaged:
            ax.plot(
                [int(r["step"]) for r in averaged],
                [float(r["dev_bleu"]) for r in averaged],
                "*",
                markersize=10,
                label="checkpoint average",
            )
        ax.set_xlabel("training step")
        ax.set_ylabel("dev BLEU (greedy)")
        ax.grid(alpha=0.3)
        loss_ax = ax.twinx()
        loss_ax.plot(
            steps,
            [float(r["train_loss"]) for r in single],
            color="#999999",
            linewidth=1,
            label="loss of the batch before it (noisy)",
        )
        loss_ax.set_ylabel("training loss of one batch")
        lines = ax.get_legend_handles_labels()
        more = loss_ax.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right", fontsize=7)
        ax.set_title(title)
    return fig


def save_training_curve(log_path: Path, png_path: Path, title: str) -> Path:
    return save_figure(training_curve(read_log(log_path), title), png_path, dpi=120)
