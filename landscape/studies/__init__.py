"""The studies, one folder each: everything a study alone uses (its ``Config``, ``Result``, ``run``
and ``PRESETS``, its helpers, its ``figures``). A study never imports another study.
"""

from __future__ import annotations

import importlib
import pkgutil

STUDY_PARTS = ("Config", "Result", "run", "PRESETS")


def study_modules() -> list[str]:
    """Names of the study modules under `landscape.studies`: those that define ``Config``,
    ``Result``, ``run`` and ``PRESETS``."""
    names = []
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        if info.ispkg:
            continue
        module = importlib.import_module(info.name)
        if all(hasattr(module, part) for part in STUDY_PARTS):
            names.append(info.name)
    return sorted(names)
