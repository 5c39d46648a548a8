"""The figure of a plot: one Axes per row of tile cells, title, note, legend, and the PNG.

``Canvas`` makes the matplotlib Figure on a FigureCanvasAgg (no pyplot, no global state), frames
each row's cells (tile names below, "Rx N" above, flagged and no-data bands, receiver separators),
draws points and lines clipped to the shared y range and encodes the PNG (``pngs``: 1440 px wide,
a 256-colour palette); ``Batches`` collects a plot's points so each style is drawn in one call;
``plot_canvas`` sets up the Canvas of a plot's data (its tiles, title, no-data cells, y range and
the flagged-tile legend entry). ``pixel_size`` is the PNG's size, known from the tiles alone (the
pages give every <img> its width and height before the plot is drawn).

matplotlib is imported only inside the functions that draw (importing it costs ~1 s).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.plots import legend as legends
from chalicelib.plots import pngs
from chalicelib.plots.layout import (FLAG_BAND, FLAG_TEXT, GROUP_SIZE, GROUPS_PER_ROW, NODATA_BAND, NODATA_TEXT,
                                     Group, Place, TileRef, places, robust_limits)

DPI = 100
FIG_WIDTH_IN = pngs.FULL_WIDTH / DPI  # 14.4 in
AXES_HEIGHT_IN = 1.9
ROW_GAP_IN = 0.95  # tile names below, receiver labels above
HEADER_IN = 1.05  # title and legend
FOOTER_IN = 0.0
LEFT_IN, RIGHT_IN = 0.75, 0.15


def height_px(n_rows: int) -> int:
    """The figure's height in whole pixels for ``n_rows`` rows of receivers (title and legend on top)."""
    return round(DPI * (HEADER_IN + max(1, n_rows) * (AXES_HEIGHT_IN + ROW_GAP_IN) + FOOTER_IN))


def pixel_size(tiles: Sequence[TileRef]) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of a plot of these tiles, without drawing it."""
    rows, _ = places(tiles)
    return pngs.FULL_WIDTH, height_px(len(rows))


def plain(text: Any) -> str:
    """Text shown literally by matplotlib (a '$' in a name would start mathtext)."""
    return str(text).replace("$", r"\$")


class Batches:
    """Points and lines collected per (row, style) and drawn in one call each (fast)."""

    def __init__(self) -> None:
        self._pts: dict[tuple, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def add(self, row: int, x: np.ndarray | float, y: np.ndarray | float, *, color: str, alpha: float = 1.0,
            size: float = 2.0, marker: str = "o", edge: str | None = None, z: float = 2.0,
            line: bool = False, annotate: bool = False) -> None:
        """Points (or, with ``line``, a polyline: separate lines with NaN) in one style;
        ``annotate`` writes the value beside any point beyond the y range."""
        key = (row, color, round(float(alpha), 3), float(size), marker, edge, float(z), line, annotate)
        xs, ys = self._pts.setdefault(key, ([], []))
        xs.append(np.atleast_1d(np.asarray(x, dtype=np.float64)))
        ys.append(np.atleast_1d(np.asarray(y, dtype=np.float64)))

    def draw(self, canvas: Canvas) -> None:
        """Draw every batch on the canvas, lowest z first."""
        for key in sorted(self._pts, key=lambda k: k[6]):
            row, color, alpha, size, marker, edge, z, line, annotate = key
            xs, ys = self._pts[key]
            x, y = np.concatenate(xs), np.concatenate(ys)
            if line:
                canvas.line(row, x, y, color=color, alpha=alpha, width=size, z=z)
            else:
                canvas.points(row, x, y, color=color, alpha=alpha, size=size, marker=marker, edge=edge, z=z,
                              annotate=annotate)


class Canvas:
    """A figure of tile cells: ``where[tileid]`` gives each tile's row and cell centre."""

    def __init__(self, tiles: Sequence[TileRef], *, title: str, ylabel: str, ylim: tuple[float, float],
                 legend: Sequence[legends.Entry] = (), note: str = "",
                 no_data: Iterable[int] = (), zero_line: bool = True) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.rows_of_groups, self.where = places(tiles)
        self.ylim = ylim
        self.size = pngs.FULL_WIDTH, height_px(len(self.rows_of_groups))
        height = self.size[1] / DPI  # inches, a whole number of pixels
        self.fig = Figure(figsize=(FIG_WIDTH_IN, height), dpi=DPI)
        FigureCanvasAgg(self.fig)
        self.fig.patch.set_facecolor("white")
        self.axes = []
        no_data = set(no_data)
        cells_per_row = GROUP_SIZE * GROUPS_PER_ROW
        for r, row in enumerate(self.rows_of_groups):
            top = HEADER_IN + r * (AXES_HEIGHT_IN + ROW_GAP_IN) + 0.25
            ncells = max(cells_per_row, sum(len(g.cells) for g in row))
            width_in = (FIG_WIDTH_IN - LEFT_IN - RIGHT_IN)
            ax = self.fig.add_axes((LEFT_IN / FIG_WIDTH_IN, 1 - (top + AXES_HEIGHT_IN) / height,
                                    width_in / FIG_WIDTH_IN, AXES_HEIGHT_IN / height))
            self._frame(ax, row, ncells, no_data, zero_line)
            ax.set_ylabel(plain(ylabel), fontsize=8)
            self.axes.append(ax)
        self.fig.text(0.5, 1 - 0.12 / height, plain(title), ha="center", va="top", fontsize=12, fontweight="bold")
        note = (note + "  " if note else "") + "Tiles by receiver (Rx) and slot 1–8, left to right."
        self.fig.text(0.5, 1 - 0.42 / height, plain(note), ha="center", va="top", fontsize=8.5, color="#444")
        if legend:
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], label=plain(label), **style) for label, style in legend]
            self.fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 10), fontsize=8.5,
                            frameon=False, bbox_to_anchor=(0.5, 1 - 0.62 / height), handletextpad=0.4,
                            columnspacing=1.4)
        if not tiles:
            self.fig.text(0.5, 0.5, "no tiles in this observation", ha="center", va="center", fontsize=14,
                          color=NODATA_TEXT)

    def _frame(self, ax, row: Sequence[Group], ncells: int, no_data: set[int], zero_line: bool) -> None:
        # Tile names are plain Text artists under each cell, not tick labels: a matplotlib Tick
        # costs ~3 ms (256 of them would be most of the rendering time).
        from matplotlib.ticker import MaxNLocator

        ax.set_xlim(-0.5, ncells - 0.5)
        ax.set_ylim(*self.ylim)
        ax.set_xticks([])
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.tick_params(axis="y", labelsize=7.5)
        under = ax.get_xaxis_transform()
        x0 = 0
        bounds = []
        for g in row:
            for j, t in enumerate(g.cells):
                x = x0 + j
                if t is None:
                    continue
                colour = "#1d2430"
                if t.flagged:
                    colour = FLAG_TEXT
                    ax.axvspan(x - 0.5, x + 0.5, color=FLAG_BAND, zorder=0, lw=0)
                    ax.text(x, 0.5, "flagged", transform=under, rotation=90, ha="center", va="center",
                            fontsize=7, color=FLAG_TEXT, zorder=1)
                elif t.tileid in no_data:
                    colour = NODATA_TEXT
                    ax.axvspan(x - 0.5, x + 0.5, color=NODATA_BAND, zorder=0, lw=0)
                    ax.text(x, 0.5, "no data", transform=under, rotation=90, ha="center", va="center",
                            fontsize=7, color=NODATA_TEXT, zorder=1)
                ax.text(x, -0.02, plain(t.name), transform=under, rotation=90, ha="center", va="top",
                        fontsize=7, color=colour, fontweight="bold" if t.flagged else "normal")
            ax.text(x0 + (len(g.cells) - 1) / 2, 1.02, g.label, transform=under, ha="center",
                    va="bottom", fontsize=8.5, fontweight="bold")
            x0 += len(g.cells)
            bounds.append(x0 - 0.5)
        ax.vlines(np.arange(0.5, ncells - 0.5), 0, 1, transform=under, colors="#e3e6ea", lw=0.5, zorder=0.5)
        seps = [b for b in bounds if b < ncells - 0.5]
        if seps:
            ax.vlines(seps, 0, 1, transform=under, colors="#6b7380", lw=1.0, zorder=0.6)
        if zero_line and self.ylim[0] < 0 < self.ylim[1]:
            ax.axhline(0.0, color="#9aa1ab", lw=0.6, zorder=0.7)

    def cells(self, tiles: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], Place]]:
        """Each tile record of a plot's data with its cell's place (row, x of the centre)."""
        for t in tiles:
            yield t, self.where[t["tileid"]]

    def points(self, row: int, x: np.ndarray, y: np.ndarray, *, color: str, alpha: float = 1.0, size: float = 2.0,
               marker: str = "o", edge: str | None = None, z: float = 2.0, annotate: bool = False) -> None:
        """Markers; values beyond the y range drawn at its edge as outward triangles (with the
        value written beside them when ``annotate``)."""
        ax = self.axes[row]
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        lo, hi = self.ylim
        inside = (y >= lo) & (y <= hi)
        style = dict(ls="", color=color, alpha=alpha, zorder=z)
        edge_style = dict(mec=edge, mew=0.7) if edge else dict(mew=0)
        if inside.any():
            ax.plot(x[inside], y[inside], marker=marker, ms=size, **edge_style, **style)
        span = hi - lo
        for mask, edge_y, m in ((y > hi, hi - 0.02 * span, "^"), (y < lo, lo + 0.02 * span, "v")):
            if mask.any():
                ax.plot(x[mask], np.full(int(mask.sum()), edge_y), marker=m, ms=max(size, 3.0), **edge_style,
                        **style)
                if annotate:
                    for xi, yi in zip(x[mask], y[mask]):
                        ax.text(xi, edge_y + (-0.06 if m == "^" else 0.06) * span, f"{yi:.3g}", rotation=90,
                                ha="center", va="top" if m == "^" else "bottom", fontsize=6.5, color=color,
                                zorder=z + 0.1)

    def line(self, row: int, x: np.ndarray, y: np.ndarray, *, color: str, alpha: float = 1.0, width: float = 1.0,
             z: float = 2.0) -> None:
        """A polyline (NaN separates pieces), clipped to the y range."""
        lo, hi = self.ylim
        self.axes[row].plot(x, np.clip(y, lo, hi), color=color, alpha=alpha, lw=width, zorder=z,
                            solid_joinstyle="round")

    def png(self) -> bytes:
        """The figure as a compact PNG of ``self.size`` pixels (``pngs.from_rgba``: the same plot
        gives the same bytes)."""
        self.fig.canvas.draw()
        return pngs.from_rgba(np.asarray(self.fig.canvas.buffer_rgba()), self.size)


def title(kind: str, meta: Mapping[str, Any] | None, fitid: int, obsid: int) -> str:
    """'tilediff  obs 1457865688 Cal_PicA_Ch121  fit 1773831785589944 (calvin, 2026-03-18 18:43 AWST)'."""
    meta = meta or {}
    name = f" {meta['obsname']}" if meta.get("obsname") else ""
    bits = [b for b in (meta.get("creator"), (meta.get("ran_awst") or "") + (" AWST" if meta.get("ran_awst") else ""))
            if b]
    extra = f" ({', '.join(bits)})" if bits else ""
    return f"{kind} — obs {obsid}{name} — fit {fitid}{extra}"


def tile_refs_of(data: Mapping[str, Any]) -> list[TileRef]:
    """The tiles of a plot's data (its ``tiles`` records), in their order."""
    return [TileRef(t["tileid"], t["name"], t["rx"], t["slot"], t["flagged"]) for t in data["tiles"]]


def plot_canvas(kind: str, data: Mapping[str, Any], *, ylabel: str, values: np.ndarray, note: str,
                legend: Sequence[legends.Entry], zero_line: bool = True) -> Canvas:
    """The Canvas every plot starts from: its tiles, title and no-data cells, a y range holding
    ``values``, and ``legend`` followed by the flagged-tile entry (every plot has flag bands)."""
    tiles = data["tiles"]
    return Canvas(tile_refs_of(data), title=title(kind, data.get("meta"), data["fitid"], data["obsid"]),
                  ylabel=ylabel, ylim=robust_limits(values), note=note, legend=[*legend, legends.flagged()],
                  no_data=[t["tileid"] for t in tiles if t["no_data"]], zero_line=zero_line)
