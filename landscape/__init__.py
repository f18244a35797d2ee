"""PyTorch back-end of Convexify: data, networks, training, surfaces and one module per study.

Never imports streamlit; may import `solvers`.
"""
