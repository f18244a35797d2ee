"""Plotly figure builders: pure functions Result -> go.Figure, one module per study."""
