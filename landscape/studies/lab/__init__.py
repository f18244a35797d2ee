"""Landscape Lab: surfaces and curvature of a built-in or uploaded model on its data."""
