"""Pinned numerics: the same floating-point results on every x86-64 machine with AVX2.

PyTorch's CPU kernels (ATen), MKL (torch's BLAS), oneDNN and OpenBLAS (NumPy's BLAS) each pick
their code path from the processor they find, and float32 training amplifies the last-bit
differences of two paths until two machines end in different minima. Presets are therefore
computed, and checked by ``tests/test_presets.py``, with every library held to its AVX2 path and
one thread (``PINNED``). The environment is read when the libraries load, so it must be set
before ``torch`` or ``numpy`` is imported: `pinned_environment` gives the variables for a child
process, and this module itself imports neither.
"""

from __future__ import annotations

import os
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


def fingerprint() -> dict[str, str]:
    """What a stored preset must have been computed under to be compared bit for bit here: the
    pinned variables as this process sees them, and the torch and NumPy versions."""
    return {
        **{name: os.environ.get(name, "") for name in PINNED},
        "torch": metadata.version("torch"),
        "numpy": metadata.version("numpy"),
    }
