"""The colours every surface draws with: one per KPI status, one per segment, and the chart lines.

The dashboard's charts, the report's charts and its stylesheet take their colours from here, so
"off target" is the same red on screen and on paper, and a location keeps its colour everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

STATUS_COLORS = {"on_target": "#2e7d32", "watch": "#f9a825", "off_target": "#c62828"}
# the same statuses as text on a light tint (the report's table), readable in print
STATUS_TEXT = {"on_target": "#1e7b34", "watch": "#8a5a00", "off_target": "#b03a2e"}
STATUS_TINTS = {"on_target": "#dff3e4", "watch": "#fff1d6", "off_target": "#fbe1de"}
EFFECT_COLORS = {"better": STATUS_TEXT["on_target"], "worse": STATUS_TEXT["off_target"], "steady": "#666666"}
NO_STATUS_COLOR = "#78909c"
TARGET_COLOR = STATUS_COLORS["on_target"]
RED_COLOR = STATUS_COLORS["off_target"]
LINE_COLOR = "#1f5f8b"  # a KPI's own line, and the report's headings
GRID_COLOR = "#e5e8eb"
# a control chart's limits and centre lines, and the ring around a point that signals (kpis.spc)
LIMIT_COLOR = "#7e57c2"
CENTRE_COLOR = "#5e35b1"
SIGNAL_COLOR = "#d81b60"
CHANGE_COLOR = "#37474f"  # the vertical line where a logged change starts a phase
UNKNOWN_COLOR = "#9E9E9E"  # a segment without a known value (e.g. no payer class)
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
SEGMENTS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def segment_colors(ids: Sequence[object]) -> dict[str, str]:
    """A stable colour per segment id, given the dimension's full ordered list of ids."""
    return {str(i): SEGMENTS[n % len(SEGMENTS)] for n, i in enumerate(ids)}


def status_color(status: object) -> str:
    return STATUS_COLORS.get(status, NO_STATUS_COLOR) if isinstance(status, str) else NO_STATUS_COLOR
