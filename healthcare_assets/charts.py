"""Charts in materialisation metadata: a matplotlib figure rendered to a PNG embedded in markdown.

The Dagster UI renders `data:` image URIs in markdown metadata, so a chart needs no
file server. Callers plot aggregates only (counts, metrics, bins), never records,
so no chart can show PHI.

    figure, axes = new_figure()
    axes.plot(...)
    metadata["roc_curve"] = figure_markdown(figure, "ROC curve on the labelled claims")

or, for the common case, `bar_chart_markdown({"upcoding": 12, ...}, "Fraud labels by pattern")`.
"""

import base64
import io
from collections.abc import Mapping

import dagster as dg
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # a bare Figure renders to memory: no pyplot state, no display

DPI = 100


def new_figure(width: float = 6.0, height: float = 3.0) -> tuple[Figure, Axes]:
    """A figure of `width` x `height` inches (600 x 300 pixels by default) with one set of axes."""
    figure = Figure(figsize=(width, height), dpi=DPI)
    return figure, figure.add_subplot()


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def figure_markdown(figure: Figure, title: str) -> dg.MarkdownMetadataValue:
    """Markdown metadata showing the figure as an embedded PNG, with `title` as its alternative text."""
    encoded = base64.b64encode(figure_png(figure)).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def bar_chart_markdown(
    values: Mapping[str, float] | Mapping[str, Mapping[str, float]], title: str, ylabel: str = "count"
) -> dg.MarkdownMetadataValue:
    """A bar chart of label -> value, or grouped bars of group -> {series -> value}, as markdown metadata."""
    figure, axes = new_figure()
    groups = list(values)
    if groups and isinstance(values[groups[0]], Mapping):
        series = sorted({name for group in groups for name in values[group]})  # type: ignore[union-attr]
        width = 0.8 / max(len(series), 1)
        for index, name in enumerate(series):
            heights = [values[group].get(name, 0) for group in groups]  # type: ignore[union-attr]
            positions = [position + index * width for position in range(len(groups))]
            axes.bar(positions, heights, width=width, label=name)
        axes.set_xticks([position + width * (len(series) - 1) / 2 for position in range(len(groups))], groups)
        if series:
            axes.legend(fontsize="small")
    else:
        axes.bar(groups, [values[group] for group in groups])
    axes.set_ylabel(ylabel)
    axes.tick_params(axis="x", labelsize="small")
    axes.set_title(title)
    return figure_markdown(figure, title)
