"""Convex optimisation for Convexify, in NumPy, SciPy, cvxpy and torch (float64 throughout).

Never imports streamlit or `landscape`.
"""
