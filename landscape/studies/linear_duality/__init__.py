"""Linear duality (seed section 2.1): deep linear networks, their convex dual, gradient descent."""
