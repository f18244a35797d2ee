"""The engine: what two or more studies use (surfaces, hoisting, directions, curvature,
non-convexity, nets, datasets, uploads, device, validation, results, presets, plotting helpers).

Never imports a study (``landscape.studies``) and never imports streamlit; may import `solvers`.
"""
