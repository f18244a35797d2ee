"""Pinned numerics for ``python -m landscape precompute``: one code path per library.

PyTorch's CPU kernels (ATen), MKL (torch's BLAS), oneDNN and OpenBLAS (NumPy's BLAS) each pick
their code path from the processor they find, and float32 training amplifies the last-bit
differences of two paths until two machines end in different minima. The presets are computed
with every library held to its AVX2 path and one thread (``PINNED``), so that recomputing them
on one machine repeats their bits, and on another x86-64 machine with AVX2 and the same torch
and NumPy moves them in the last bits only (the install docs give what was measured). On ARM
the x86 variables are ignored with a warning. Nothing else needs it: the presets' test
(``tests/test_presets.py``) checks what a preset claims and the quantities that agree across
processors, not bits, so a user's ``pytest`` runs on any machine.
The environment is read when the libraries load, so it must be set before ``torch`` or
``numpy`` is imported: `pinned_environment` gives the variables for a child process, and this
module itself imports neither.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from importlib import metadata

PINNED: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorised kernels
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility branch
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's kernels
    "OPENBLAS_CORETYPE": "Haswell",  # NumPy's OpenBLAS kernels
    "OMP_NUM_THREADS": "1",  # one thread: reductions in one order
    "MKL_NUM_THREADS": "1",
    "CONVEXIFY_TORCH_THREADS": "1",  # landscape.server.threads.configure_threads
}


def is_pinned(environment: Mapping[str, str] = os.environ) -> bool:
    """Whether ``environment`` holds every variable of ``PINNED`` at its pinned value."""
    return all(environment.get(name) == value for name, value in PINNED.items())


def pinned_environment(environment: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``environment`` with the ``PINNED`` variables set, for a child process."""
    return {**environment, **PINNED}


def computed_with() -> dict[str, str]:
    """The stack that computed a preset, for the record (never compared: the presets' check is
    the code's fingerprint, `landscape.precompute.code_fingerprint`): the pinned variables as
    this process sees them, Python, torch and NumPy versions, and the processor's architecture."""
    return {
        **{name: os.environ.get(name, "") for name in PINNED},
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "numpy": metadata.version("numpy"),
        "machine": platform.machine(),
    }
