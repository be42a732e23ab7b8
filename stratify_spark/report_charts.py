"""Inline SVG charts for the HTML run report: a horizontal bar chart and a heat map.

The charts are plain SVG markup with no script, so the page shows them
without a network or JavaScript. Each bar and cell has an SVG <title>, which
browsers show as a tooltip on hover. Every text passes through html.escape.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Optional, Sequence

FONT_SIZE = 13
# Estimated average width of a character at FONT_SIZE in common sans-serif fonts, for sizing label columns.
CHAR_WIDTH = 7.2
MAX_LABEL_CHARS = 56
COLUMN_LABEL_CHARS = 36

# Diverging scale for z-scores: blue below the mean, white at it and red above, saturated at +-Z_LIMIT.
Z_LIMIT = 2.0
NEGATIVE_RGB = (46, 109, 164)
POSITIVE_RGB = (192, 57, 43)
# Sequential scale for shares from 0 (white) to 1.
SHARE_RGB = (75, 56, 140)
EMPTY_FILL = "#f2f2f2"
BAR_FILL = "#3b6ea5"
TEXT_FILL = "#1a1a1a"


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length as a fraction of the longest bar, the text after it and a tooltip."""

    label: str
    fraction: float
    text: str
    tooltip: str


@dataclass(frozen=True)
class HeatCell:
    """One heat map cell: the text in it, its fill colour and its tooltip."""

    text: str
    fill: str
    tooltip: str


def shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """Cut `text` to `limit` characters, ending with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mix(rgb: tuple[int, int, int], weight: float) -> str:
    """Blend white with `rgb`; weight 0 is white and 1 is the colour itself."""
    weight = max(0.0, min(1.0, weight))
    red, green, blue = (round(255 + (channel - 255) * weight) for channel in rgb)
    return f"#{red:02x}{green:02x}{blue:02x}"


def diverging_fill(z_score: Optional[float]) -> str:
    if z_score is None:
        return EMPTY_FILL
    return _mix(POSITIVE_RGB if z_score > 0 else NEGATIVE_RGB, abs(z_score) / Z_LIMIT)


def share_fill(share: Optional[float]) -> str:
    # A square root keeps small shares visible next to a large diagonal.
    return EMPTY_FILL if share is None else _mix(SHARE_RGB, max(0.0, share) ** 0.5)


def _is_dark(fill: str) -> bool:
    """Tell whether white text reads better than black on `fill` (a #rrggbb colour)."""
    red, green, blue = (int(fill[index:index + 2], 16) for index in (1, 3, 5))
    return 0.299 * red + 0.587 * green + 0.114 * blue < 140


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


def bar_chart(bars: Sequence[Bar], title: str, bar_area: int = 420) -> str:
    """Render horizontal bars, one per row, with the label on the left and the value text on the right."""
    row_height = 30
    top = 8
    label_width = max((_text_width(shorten(bar.label)) for bar in bars), default=0) + 16
    text_width = max((_text_width(bar.text) for bar in bars), default=0) + 16
    width = round(label_width + bar_area + text_width)
    height = top * 2 + row_height * len(bars)

    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'fill="{TEXT_FILL}" role="img" aria-label="{escape(title)}">']
    for index, bar in enumerate(bars):
        y = top + index * row_height
        length = max(1.0, bar.fraction * bar_area) if bar.fraction > 0 else 0.0
        middle = y + row_height / 2 + FONT_SIZE * 0.35
        parts.append(
            f'<g><title>{escape(bar.tooltip)}</title>'
            f'<text x="{label_width - 8:.0f}" y="{middle:.1f}" text-anchor="end">{escape(shorten(bar.label))}</text>'
            f'<rect x="{label_width:.0f}" y="{y + 5}" width="{length:.1f}" height="{row_height - 10}" '
            f'fill="{BAR_FILL}"></rect>'
            f'<text x="{label_width + length + 6:.1f}" y="{middle:.1f}">{escape(bar.text)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def heat_map(row_labels: Sequence[str], column_labels: Sequence[str], cells: Sequence[Sequence[HeatCell]],
             title: str, cell_width: int = 84, cell_height: int = 30) -> str:
    """Render a grid of coloured cells with row labels on the left and slanted column labels on top."""
    label_width = max((_text_width(shorten(label)) for label in row_labels), default=0) + 16
    # Column labels are slanted 40 degrees, so their height is about 0.65 of their length.
    longest_column_label = max((_text_width(shorten(label, COLUMN_LABEL_CHARS)) for label in column_labels), default=0)
    header_height = longest_column_label * 0.65 + 24
    # The last column's slanted label reaches past the grid on the right.
    last_column_label = _text_width(shorten(column_labels[-1], COLUMN_LABEL_CHARS)) if column_labels else 0
    slant_overhang = last_column_label * 0.77
    width = round(label_width + cell_width * len(column_labels) + slant_overhang + 8)
    height = round(header_height + cell_height * len(row_labels) + 8)

    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'fill="{TEXT_FILL}" role="img" aria-label="{escape(title)}">']
    for column, label in enumerate(column_labels):
        x = label_width + column * cell_width + cell_width / 2
        y = header_height - 8
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}" transform="rotate(-40 {x:.1f} {y:.1f})">'
                     f'<title>{escape(label)}</title>{escape(shorten(label, COLUMN_LABEL_CHARS))}</text>')
    for row, label in enumerate(row_labels):
        y = header_height + row * cell_height
        parts.append(f'<text x="{label_width - 8:.0f}" y="{y + cell_height / 2 + FONT_SIZE * 0.35:.1f}" '
                     f'text-anchor="end"><title>{escape(label)}</title>{escape(shorten(label))}</text>')
        for column, cell in enumerate(cells[row]):
            x = label_width + column * cell_width
            colour = "#ffffff" if _is_dark(cell.fill) else TEXT_FILL
            parts.append(
                f'<g><title>{escape(cell.tooltip)}</title>'
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{cell_width - 2}" height="{cell_height - 2}" '
                f'fill="{cell.fill}"></rect>'
                f'<text x="{x + (cell_width - 2) / 2:.1f}" y="{y + cell_height / 2 + FONT_SIZE * 0.3:.1f}" '
                f'text-anchor="middle" fill="{colour}">{escape(cell.text)}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)
