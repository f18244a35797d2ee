"""The implementation behind ``import landscape``: one call per common question.

`landscape/__init__.py` re-exports the public names (lazily); the modules here hold them:
`problems` (a model, a loss, data), `surfaces` (planes and lines), `curvature` (evidence,
spectral density, trace), `kernels` (Gram and NTK), `records` (the metadata every result
carries, progress bars), `isolation` (a library call leaves the process as it found it) and
`figures` (the dashboard's own figures, drawn from these results).
"""
