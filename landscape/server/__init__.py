"""What only a long-running process needs: byte-bounded caches, the run queue, allocator and
thread settings, numerics pinning, seeded construction under a lock, Ray."""
