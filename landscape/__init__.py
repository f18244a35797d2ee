"""PyTorch back-end of Convexify: the engine (`landscape.engine`) and one folder per study
(`landscape.studies`). Never imports streamlit; may import `solvers`.
"""
