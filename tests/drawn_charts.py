"""The charts an AppTest run drew through `ui.charts` (AppTest sees them as components)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ui import charts


@dataclass(frozen=True)
class DrawnChart:
    key: str
    spec: str  # the figure's JSON, as the browser receives it

    @property
    def figure(self) -> dict[str, Any]:
        return json.loads(self.spec)


def drawn_charts(at) -> list[DrawnChart]:
    """The page's charts, in the order drawn (not the router's plotly.js preload, which draws
    none)."""
    return [
        DrawnChart(key=element.key, spec=element.proto.bytes.decode())
        for element in at.get("bidi_component")
        if element.proto.component_name == charts.COMPONENT and element.proto.bytes
    ]
