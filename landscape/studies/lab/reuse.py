"""The parts of a Lab run kept between runs, and the keys that say when a part is reused.

Moving one control recomputes only what reads it. Each part of a run (the training, the
curvature with its evidence, the centre's evidence, the slice Hessian with the trace, the
slices) is kept in `landscape.server.study_parts` under a table of its own, keyed by the
configuration with every field the part does not read set to its default (`Part.key`). A part
that the stored preset of the same key holds is taken from that preset (`Part.get`), except
inside `presets.afresh`, where everything is computed anew.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from landscape.files import presets
from landscape.server import study_parts
from landscape.studies.lab.config import STUDY, Config
from landscape.studies.lab.results import Result

SLICE_POINTS = 61  # the slices have max(SLICE_POINTS, resolution) points


def _no_narrowing(config: Config) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Part:
    """A part of a run kept between runs: its table in `study_parts`, the `Config` fields it
    does not read (its key sets them to their defaults), and the fields its key keeps in a
    coarser form (``narrowed(config)``: field -> value)."""

    table: str
    ignores: tuple[str, ...]
    narrowed: Callable[[Config], dict[str, Any]] = _no_narrowing

    def key(self, config: Config) -> Config:
        """``config`` with the ignored fields at their defaults: equal keys share the part."""
        default = Config()
        values = {name: getattr(default, name) for name in self.ignores}
        return replace(config, **{**values, **self.narrowed(config)})

    def held(self, config: Config) -> bool:
        """Whether the part of ``config`` is kept in memory."""
        return study_parts.holds(self.table, self.key(config))

    def get(
        self, config: Config, compute: Callable[[], Any], stored: Callable[[Result], Any]
    ) -> Any:
        """The part kept under ``config``'s key; else ``stored(the stored preset of the key)``
        when there is one (`stored_result`), else ``compute()``. It is kept with whether it
        came from a preset: inside `presets.afresh` such a part is computed anew."""
        key = self.key(config)
        entry = study_parts.kept(self.table, key)
        if entry is not None and not (entry[1] and presets.afresh_active()):
            return entry[0]
        preset = stored_result(key)
        found = stored(preset) if preset is not None else compute()
        study_parts.keep(self.table, key, (found, preset is not None))
        return found


def _three_models_only(config: Config) -> dict[str, Any]:
    """The training reads the directions only to train three models for the three-model plane."""
    return {"directions": "three_models"} if config.directions == "three_models" else {}


def _slice_points(config: Config) -> dict[str, Any]:
    """The slices read the resolution only above `SLICE_POINTS`."""
    return {"resolution": max(SLICE_POINTS, config.resolution)}


_SURFACE_ONLY = ("resolution", "sample_size")  # the surface's grid, the slices' sub-sample
_MAP_ONLY = ("curvature_resolution", "lanczos_iterations")  # the curvature map's grid
_PLANE = ("span", "normalization", "one_dim")  # the plane's range and random directions

#: The data and the trained models (`training.trained`): one training per key at a time.
TRAINING = Part(
    "lab.trained", (*_PLANE, *_SURFACE_ONLY, *_MAP_ONLY, "directions"), _three_models_only
)
#: The curvature map with the evidence: a new resolution recomputes the surface and slices only.
CURVATURE = Part("lab.curvatures", _SURFACE_ONLY)
#: The centre's evidence (`curvature.centre_evidence`): the centre, the trajectory and the seed.
CENTRE = Part("lab.centres", (*_SURFACE_ONLY, *_PLANE, *_MAP_ONLY))
#: The slice's exact 2x2 Hessian and Hutchinson's trace at the centre: the directions are not
#: scaled by the range.
HESSIAN = Part("lab.hessians", (*_SURFACE_ONLY, "span", *_MAP_ONLY))
#: The slices and the interpolation (`plane.slices`).
SLICES = Part("lab.slices", _MAP_ONLY, _slice_points)
PARTS = (TRAINING, CURVATURE, CENTRE, HESSIAN, SLICES)


def stored_result(key: Config) -> Result | None:
    """The stored preset whose configuration is ``key`` (a run with these settings already
    computed its parts: `landscape.files.presets.stored_part`), or None; None too for a preset
    that diverged."""
    stored = presets.stored_part(STUDY, key)
    if stored is None or stored.diverged:
        return None
    return stored


def curvature_ready(config: Config) -> bool:
    """Whether a run of ``config`` finds its curvature (the map included) already computed, in
    memory or with a stored preset of the same key: it then costs the training (if not kept),
    the surface and the slices only."""
    return CURVATURE.held(config) or stored_result(CURVATURE.key(config)) is not None


def clear_caches() -> None:
    """Forget every kept part (tests start afresh)."""
    for part in PARTS:
        study_parts.forget(part.table)
