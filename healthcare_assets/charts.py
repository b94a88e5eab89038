"""Charts in materialisation metadata: a matplotlib figure rendered to a PNG embedded in markdown.

The Dagster UI renders `data:` image URIs in markdown metadata, so a chart needs no
file server. Callers pass aggregates only (counts, metrics, bins, curve points),
never records, so no chart can show PHI.

    metadata["roc_curve"] = figure_markdown(curve_figure({"catboost": (fpr, tpr)}, "ROC", "FPR", "TPR", diagonal=True))
    metadata["psi_chart"] = figure_markdown(bars_figure(psi_by_feature, "PSI", "PSI", limits={"WARN": 0.1}, size=WIDE))
    metadata["score_distribution"] = figure_markdown(histogram_figure(edges, counts, "Scores", "score", {"p95": 1.2}))

The `*_figure` helpers return the matplotlib figure (what the tests inspect); `figure_markdown` embeds any
figure, titled by its plot; `new_figure` starts any other plot.
"""

import base64
import io
from collections.abc import Collection, Mapping, Sequence

import dagster as dg
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # a bare Figure renders to memory: no pyplot state, no display

DPI = 100
WIDE = (8.0, 3.5)  # inches: room for a dozen or more labelled bars or a legend beside curves
# threshold lines in the order they are given (e.g. WARN then ERROR, p95 then p99)
LIMIT_COLOURS = ("tab:orange", "tab:red", "tab:purple", "tab:brown")

BarValues = Mapping[str, float | None] | Mapping[str, Mapping[str, float | None]]  # None: undefined
Curve = tuple[Sequence[float], Sequence[float]]


def new_figure(width: float = 6.0, height: float = 3.0) -> tuple[Figure, Axes]:
    """A figure of `width` x `height` inches (600 x 300 pixels by default) with one set of axes."""
    figure = Figure(figsize=(width, height), dpi=DPI)
    return figure, figure.add_subplot()


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def figure_markdown(figure: Figure, title: str | None = None) -> dg.MarkdownMetadataValue:
    """Markdown metadata showing the figure as an embedded PNG, with `title` (default: the plot's title) as its
    alternative text."""
    title = figure.axes[0].get_title() if title is None else title
    encoded = base64.b64encode(figure_png(figure)).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def _limit_lines(axes: Axes, limits: Mapping[str, float], vertical: bool = False) -> None:
    """Dashed threshold lines, each named in the legend."""
    for index, (label, value) in enumerate(limits.items()):
        draw = axes.axvline if vertical else axes.axhline
        draw(value, color=LIMIT_COLOURS[index % len(LIMIT_COLOURS)], linestyle="--", linewidth=1.2, label=label)


def bars_figure(
    values: BarValues,
    title: str,
    ylabel: str = "count",
    limits: Mapping[str, float] | None = None,
    band: tuple[str, float, float] | None = None,
    cap: float | None = None,
    size: tuple[float, float] = (6.0, 3.0),
    set_apart: tuple[str, Collection[str]] | None = None,
) -> Figure:
    """Bars of label -> value, or grouped bars of group -> {series -> value}; optional threshold lines
    (`limits`, label -> y), a shaded `band` (label, low, high) and a `cap` above which bars are cut off
    (so one extreme value does not flatten the lines everyone compares against). A cut-off bar is hatched and
    labelled with its value; an undefined value (None) is drawn as an empty outlined bar labelled "undefined".
    `set_apart` (legend text, labels) draws those labels' bars grey and hatched, marked "*", e.g. values a gate
    does not judge."""
    figure, axes = new_figure(*size)
    groups = list(values)
    clipped = []

    def draw(positions: list[float], heights: list[float | None], **style):
        shown = [0.0 if h is None else min(h, cap) if cap is not None else h for h in heights]
        bars = axes.bar(positions, shown, **style)
        top = cap if cap is not None else max((h for h in shown), default=0.0) or 1.0
        for bar, height in zip(bars, heights, strict=True):
            if height is None:
                bar.set_height(top * 0.15)
                bar.set_fill(False)
                bar.set_hatch("//")
                text = "undefined"
            elif cap is not None and height > cap:
                bar.set_hatch("//")
                clipped.append(height)
                text = f"{height:.3g}"
            else:
                continue
            x = bar.get_x() + bar.get_width() / 2
            axes.annotate(text, (x, bar.get_height()), ha="center", va="bottom", fontsize="x-small", rotation=90)
        return bars

    legend = bool(limits or band)
    if groups and isinstance(values[groups[0]], Mapping):
        series = sorted({name for group in groups for name in values[group]})  # type: ignore[union-attr]
        width = 0.8 / max(len(series), 1)
        for index, name in enumerate(series):
            heights = [values[group].get(name, 0) for group in groups]  # type: ignore[union-attr]
            draw([position + index * width for position in range(len(groups))], heights, width=width, label=name)
        ticks = [position + width * (len(series) - 1) / 2 for position in range(len(groups))]
        legend = legend or bool(series)
    else:
        bars = draw(list(range(len(groups))), [values[group] for group in groups])  # type: ignore[misc]
        ticks = list(range(len(groups)))
        if set_apart is not None:
            note, apart = set_apart
            label = f"* {note}"
            for bar, group in zip(bars, groups, strict=True):
                if group in apart:
                    bar.set(color="lightgrey", hatch="//", edgecolor="grey", label=label)
                    label = "_nolegend_"  # one legend entry for them all
            legend = legend or any(group in apart for group in groups)
            groups = [f"{group} *" if group in apart else group for group in groups]
    if cap is not None and clipped:
        axes.set_ylim(top=cap * 1.25)  # room for the labels of the cut-off bars
    if band is not None:
        label, low, high = band
        axes.axhspan(low, high, color="green", alpha=0.15, zorder=0, label=label)  # behind the bars
    _limit_lines(axes, limits or {})
    crowded = len(groups) > 6 or max((len(group) for group in groups), default=0) > 14
    axes.set_xticks(ticks, groups, rotation=45 if crowded else 0, ha="right" if crowded else "center")
    axes.tick_params(axis="x", labelsize="small")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if legend:
        axes.legend(fontsize="small")
    return figure


def bar_chart_markdown(values: BarValues, title: str, ylabel: str = "count") -> dg.MarkdownMetadataValue:
    """A bar chart of label -> value, or grouped bars of group -> {series -> value}, as markdown metadata."""
    return figure_markdown(bars_figure(values, title, ylabel), title)


def curve_figure(
    curves: Mapping[str, Curve],
    title: str,
    xlabel: str,
    ylabel: str,
    diagonal: bool = False,
    limits: Mapping[str, float] | None = None,
) -> Figure:
    """One line per name -> (x, y) on [0, 1] x [0, 1] axes; `diagonal` adds the chance line of a ROC plot,
    `limits` horizontal reference lines (e.g. the precision of flagging at random)."""
    figure, axes = new_figure(*WIDE)
    for name, (x, y) in curves.items():
        axes.plot(x, y, linewidth=1.5, label=name)
    if diagonal:
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    _limit_lines(axes, limits or {})
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def histogram_figure(
    edges: Sequence[float],
    counts: Sequence[int],
    title: str,
    xlabel: str,
    limits: Mapping[str, float] | None = None,
    overflow: int = 0,
    ylabel: str = "count",
) -> Figure:
    """Pre-binned counts (len(edges) = len(counts) + 1) with vertical threshold lines; `overflow` values
    above the last edge are drawn as one hatched bar after it (a long tail stays visible without
    squeezing the bins that matter)."""
    if len(edges) != len(counts) + 1:
        raise ValueError(f"a histogram needs one more edge than counts, got {len(edges)} and {len(counts)}")
    figure, axes = new_figure(*WIDE)
    widths = [high - low for low, high in zip(edges[:-1], edges[1:], strict=True)]
    axes.bar(edges[:-1], counts, width=widths, align="edge", edgecolor="white", linewidth=0.3)
    if overflow:
        axes.bar(
            [edges[-1]],
            [overflow],
            width=widths[-1],
            align="edge",
            hatch="//",
            color="lightgrey",
            label=f"> {edges[-1]:.3g}",
        )
    _limit_lines(axes, limits or {}, vertical=True)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if limits or overflow:
        axes.legend(fontsize="small")
    return figure
