"""Triton kernels (GPU), each beside its PyTorch reference."""
