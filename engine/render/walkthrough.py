"""One head's walkthrough as the user reads it: titles, folded vectors, tables (CSV, JSON) and a figure.

The arithmetic is engine/walkthrough.py's; this module only formats it. matplotlib loads only when a
figure is drawn, so the GUI imports this module at start-up.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.files import write_atomic
from engine.render.labels import KIND_LABELS, display_piece, format_number
from engine.walkthrough import Walkthrough

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FOLD_HEAD, FOLD_TAIL = 4, 2  # a folded vector shows its first 4 and last 2 values
TABLE_FORMATS = (".csv", ".json")
FIGURE_FORMATS = (".png", ".svg", ".pdf")


# --- how numbers are shown (shared by the widget and the exports) ---


def walkthrough_title(w: Walkthrough) -> str:
    """'encoder self-attention, layer 1/3, head 2/8, query 3/7 “chat”' (numbered from 1)."""
    # a decoder query is the step's input piece; naming what that step output avoids an off-by-one reading
    predicts = f" (step output “{display_piece(w.query_predicts)}”)" if w.query_predicts is not None else ""
    return (
        f"{KIND_LABELS[w.kind].name}, layer {w.layer + 1}/{w.n_layers}, head {w.head + 1}/{w.n_heads}, "
        f"query {w.query + 1}/{len(w.query_pieces)} “{display_piece(w.query_piece)}”{predicts}"
    )


def all_whole(values: np.ndarray) -> bool:
    """True when every finite value is a whole number: a by-hand table then reads as written on the board."""
    finite = values[np.isfinite(values)]
    return bool(np.all(finite == np.round(finite))) and bool(np.all(np.abs(finite) < 1e15))


def folded_indices(n: int, fold: bool) -> list[int | None]:
    """The positions of an n-long vector to show; None marks the '…' standing for those left out."""
    if not fold or n <= FOLD_HEAD + FOLD_TAIL + 1:
        return list(range(n))
    return [*range(FOLD_HEAD), None, *range(n - FOLD_TAIL, n)]


# --- export ---


def walkthrough_rows(w: Walkthrough) -> list[dict[str, Any]]:
    """Steps 2-4 (and each key's share of z), one row per key: the CSV table."""
    rows = []
    for j, piece in enumerate(w.key_pieces):
        rows.append(
            {
                "key_index": int(w.key_indices[j]),  # the key's column in the trace's map
                "key_piece": piece,
                "score_q_dot_k": float(w.scores[j]),
                "scaled": float(w.scaled[j]),
                "visible": bool(w.visible[j]),
                "masked": float(w.masked[j]),
                "weight": float(w.weights[j]),
            }
        )
    return rows


def walkthrough_csv(w: Walkthrough) -> str:
    buffer = io.StringIO()
    header = ["kind", "layer", "head", "query_index", "query_piece", *walkthrough_rows(w)[0].keys()]
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    selection = {"kind": w.kind, "layer": w.layer, "head": w.head, "query_index": w.query, "query_piece": w.query_piece}
    for row in walkthrough_rows(w):
        writer.writerow({**selection, **{k: ("-inf" if v == -math.inf else v) for k, v in row.items()}})
    return buffer.getvalue()


def key_labels(w: Walkthrough) -> list[str]:
    """'column piece' for each key, numbered from 1 by its column in the trace's map."""
    return [f"{j + 1} {display_piece(p)}" for j, p in zip(w.key_indices, w.key_pieces, strict=True)]


def _listed(array: np.ndarray) -> Any:
    """Nested lists with −∞ as None (JSON has no infinity)."""
    if array.dtype.kind != "f":
        return array.tolist()
    values = array.astype(object)  # Python floats, and room for None
    values[np.isneginf(array)] = None
    return values.tolist()


def walkthrough_json_dict(w: Walkthrough) -> dict[str, Any]:
    p = w.params
    return {
        "schema": "attention-studio-walkthrough",
        "schema_version": 1,
        "indices": "0-based",
        "model_name": w.model_name,
        "source_text": w.source_text,
        "kind": w.kind,
        "layer": w.layer,
        "head": w.head,
        "query": w.query,
        "query_piece": w.query_piece,
        "query_pieces": w.query_pieces,
        "query_predicts": w.query_predicts,
        "key_pieces": w.key_pieces,
        "key_indices": _listed(w.key_indices),
        "d_model": w.d_model,
        "d_k": w.d_k,
        "n_heads": w.n_heads,
        "norm": w.norm,
        "query_rows": w.query_note,
        "key_rows": w.key_note,
        "x_query": _listed(w.x_query),
        "x_keys": _listed(w.x_keys),
        "W_Q": _listed(p.w_q),
        "b_Q": _listed(p.b_q),
        "W_K": _listed(p.w_k),
        "b_K": _listed(p.b_k),
        "W_V": _listed(p.w_v),
        "b_V": _listed(p.b_v),
        "q": _listed(w.q),
        "k": _listed(w.k),
        "v": _listed(w.v),
        "scores": _listed(w.scores),
        "sqrt_d_k": w.scale,
        "scaled": _listed(w.scaled),
        "visible": _listed(w.visible),
        "masked (null = -inf)": _listed(w.masked),
        "weights": _listed(w.weights),
        "weighted_v": _listed(w.weighted_v),
        "z": _listed(w.z),
        "all_heads_z": _listed(w.all_z),
        "concat": _listed(w.concat),
        "W_O": _listed(p.w_o),
        "b_O": _listed(p.b_o),
        "output": _listed(w.output),
    }


def walkthrough_figure(w: Walkthrough) -> Figure:
    """The walkthrough as a figure: q, K, V as heatmaps; steps 2-4 as a table; z, the heads and the output."""
    import matplotlib  # imported here so the GUI starts without matplotlib
    from matplotlib.figure import Figure

    from engine.render.figures import STYLE

    n_keys = len(w.key_pieces)
    map_h = max(1.6, 0.17 * (n_keys + 1) + 0.9)
    table_h = 0.2 * (n_keys + 2)
    heads_h = max(1.4, 0.17 * w.n_heads + 0.9)
    sentence = w.source_text if len(w.source_text) <= 90 else w.source_text[:89] + "…"
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10.0, map_h + table_h + heads_h + 1.0), layout="constrained")
        fig.suptitle(f"{w.model_name}: {walkthrough_title(w)}\n“{sentence}”", fontsize=10)
        panels: Any = fig.subfigures(3, 1, height_ratios=[map_h, table_h, heads_h])
        _figure_vectors(panels[0], w)
        _figure_table(panels[1], w)
        _figure_output(panels[2], w)
    return fig


def _heatmap(ax: Any, values: np.ndarray, row_labels: list[str], title: str, limit: float) -> Any:
    """Rows of numbers as colours; columns numbered from 1 like the GUI's tables."""
    n_rows, n_cols = values.shape
    extent = (0.5, n_cols + 0.5, n_rows - 0.5, -0.5)  # x runs 1..n_cols, rows stay 0-based
    image = ax.imshow(
        values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="none", extent=extent
    )
    ax.set_yticks(range(n_rows), row_labels, parse_math=False)
    ax.set_title(title, loc="left")
    return image


def _limit(*arrays: np.ndarray) -> float:
    """One symmetric colour scale for maps drawn side by side."""
    return max(float(np.abs(a).max()) for a in arrays) or 1.0


def _figure_vectors(fig: Any, w: Walkthrough) -> None:
    keys = key_labels(w)
    qk_ax, v_ax = fig.subplots(1, 2)
    qk = np.vstack([w.q[None, :], w.k])  # (1 + Tk, d_k)
    limit = _limit(qk, w.v)
    rows = [f"q  {display_piece(w.query_piece)}", *(f"k{label}" for label in keys)]
    _heatmap(qk_ax, qk, rows, "1. $q = xW^Q + b^Q$ and $k_j = x_jW^K + b^K$", limit)
    image = _heatmap(v_ax, w.v, [f"v{label}" for label in keys], "$v_j = x_jW^V + b^V$", limit)
    for ax in (qk_ax, v_ax):
        ax.set_xlabel(f"dimension (d_k = {w.d_k})")
    fig.colorbar(image, ax=[qk_ax, v_ax], label="value", shrink=0.9)


def _figure_table(fig: Any, w: Walkthrough) -> None:
    ax = fig.subplots()
    ax.axis("off")
    columns = ["key", "2. q · k_j", f"3. ÷ √{w.d_k} = {w.scale:.4f}", "4. masked", "softmax weight"]
    cells = [
        [label, *(format_number(x) for x in (w.scores[j], w.scaled[j], w.masked[j]))] + [format_number(w.weights[j])]
        for j, label in enumerate(key_labels(w))
    ]
    cells.append(["sum", "", "", "", format_number(float(w.weights.sum()))])
    table = ax.table(cellText=cells, colLabels=columns, cellLoc="right", colLoc="right", bbox=(0.12, 0.0, 0.76, 1.0))
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    top = int(np.argmax(w.weights))
    table[(top + 1, 4)].set_text_props(fontweight="bold")  # the key this head attends to most


def _figure_output(fig: Any, w: Walkthrough) -> None:
    z_ax, out_ax = fig.subplots(1, 2, width_ratios=[1, 2])
    heads = [f"z head {h + 1}" for h in range(w.n_heads)]
    z_image = _heatmap(z_ax, w.all_z, heads, "5. $z = \\sum_j$ weight$_j \\cdot v_j$, every head", _limit(w.all_z))
    z_ax.add_patch(_outline(w.head, w.d_k))
    z_ax.set_xlabel(f"dimension (head {w.head + 1} outlined)")
    fig.colorbar(z_image, ax=z_ax, shrink=0.9)
    title = "concat$(z_1 … z_H)\\, W^O + b^O$: the sublayer's output row"
    image = _heatmap(out_ax, w.output[None, :], ["output"], title, _limit(w.output))
    out_ax.set_xlabel(f"dimension (d_model = {w.d_model})")
    fig.colorbar(image, ax=out_ax, shrink=0.9)


def _outline(row: int, width: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((0.5, row - 0.5), width, 1, fill=False, edgecolor="black", linewidth=1.5)


def save_walkthrough(w: Walkthrough, path: Path | str, dpi: float | None = None) -> Path:
    """Write the walkthrough as a figure (.png/.svg/.pdf) or a table (.csv/.json), atomically.

    Raises ExportError (one line, naming the file and the reason) for another suffix or an
    unwritable path.
    """
    from engine.render.figures import ExportError, save_figure  # matplotlib loads only when exporting

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in FIGURE_FORMATS:
        return save_figure(walkthrough_figure(w), path, dpi=dpi)
    if suffix == ".csv":
        data = walkthrough_csv(w).encode("utf-8")
    elif suffix == ".json":
        data = json.dumps(walkthrough_json_dict(w), ensure_ascii=False, indent=1).encode("utf-8")
    else:
        raise ExportError(f"cannot write {path}: the name must end with .png, .svg, .pdf, .csv or .json")
    try:
        write_atomic(path, data)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from error
    return path
