"""Kernel dispatch: which implementation of a hot operation runs for a tensor's device (C++ extension, Triton,
or the plain-PyTorch reference), and the CUDA-graph sampling loop. ``fused`` (the fused sampler step),
``fused_norm`` (GroupNorm + SiLU), ``noise`` (Philox normals), ``graphed`` (CUDA graphs). See docs/DESIGN.md §8."""
