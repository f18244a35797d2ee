"""Width (seed section 3.1): Gram matrices K^(H), convergence against width, depth sweeps."""
