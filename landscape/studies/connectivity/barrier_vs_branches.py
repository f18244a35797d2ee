"""The barrier between two trained multi-branch networks ``(1/I) sum_i f_i`` against the number
of branches ``I``, before and after alignment (branches reordered, hidden units permuted)."""

from __future__ import annotations

from dataclasses import dataclass

from landscape.engine.progress import Progress
from landscape.engine.validation import check_integer
from landscape.studies.connectivity import connectivity
from landscape.studies.connectivity.sweeps import (
    SweepFields,
    SweepResult,
    check_values,
    result_shapes,
    sweep,
)

Result = SweepResult


@dataclass(frozen=True)
class Config(SweepFields):
    """Multi-branch networks of ``width`` units per branch at every ``I`` of ``branch_counts``."""

    width: int = 16
    branch_counts: tuple[int, ...] = (1, 2, 4, 8)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        self.validate_fields()
        check_integer("width", self.width, 2, connectivity.MAX_WIDTH)
        check_values("branch_counts", self.branch_counts, 1, connectivity.MAX_BRANCHES)


def run(config: Config, progress: Progress | None = None) -> SweepResult:
    """Barriers of ``pairs`` seed pairs at every number of branches."""
    config.validate()
    base = config.page_config(architecture="branches", width=config.width)
    return sweep(base, "branches", config.branch_counts, progress)


RESULT_SHAPES = result_shapes("branch_counts")
PRESETS: dict[str, Config] = {"default": Config()}
