"""Benchmarks as a command (`augpaint-fast bench`): AugPaint's engines against the eager loop, latent and pixel
RePaint and the machine's measured limits, with quality from trained weights beside every speed figure.

- ``machine``: identity, dense peak per dtype (measured and theoretical), copy bandwidth, provenance, and the
  one synchronised timing helper of the project's benchmarks (``measure`` -> ``Timing``).
- ``eager``: the plain-PyTorch baseline loop.
- ``configs``: engine configurations as data.
- ``runner``: timing one batch of each method.
- ``quality``: known-region PSNR and difference to the eager float32 samples, from trained weights.
- ``suite``: the whole run; ``report``: Markdown and PNG; ``command``: the CLI.
"""
