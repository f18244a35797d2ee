"""The barrier between two trained MLPs against their width ``m``, before and after alignment
(Entezari et al.'s conjecture: after a permutation, the barrier vanishes as ``m`` grows)."""

from __future__ import annotations

from dataclasses import dataclass

from landscape.engine.progress import Progress
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
    """MLPs of ``depth`` hidden layers at every width of ``widths``, ``pairs`` seed pairs each."""

    widths: tuple[int, ...] = (8, 32, 128)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside its allowed range."""
        self.validate_fields()
        check_values("widths", self.widths, 2, connectivity.MAX_WIDTH)


def run(config: Config, progress: Progress | None = None) -> SweepResult:
    """Barriers of ``pairs`` seed pairs at every width."""
    config.validate()
    base = config.page_config(architecture="mlp")
    return sweep(base, "width", config.widths, progress)


RESULT_SHAPES = result_shapes("widths")
PRESETS: dict[str, Config] = {"default": Config()}
