"""The algorithm in plain PyTorch, with no files, engines or command line: the DDIM schedule, AugPaint's sampler
(Algorithm 1 of the paper, docs/DESIGN.md §3), the counter-based random numbers (Philox, §4), the known-region
masks and the conditional model's inputs."""
