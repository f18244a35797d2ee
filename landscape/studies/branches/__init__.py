"""Branches (seed section 3.2): multi-branch networks, their surfaces and duality gaps."""
