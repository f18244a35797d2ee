"""Shallow ReLU (seed section 2.2): single-neuron relaxation, two-layer convex program."""
