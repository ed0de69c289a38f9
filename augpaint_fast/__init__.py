"""augpaint-fast: AugPaint (latent-diffusion inpainting augmentation for few-label segmentation), fast.

The public objects below are imported on first use, so ``import augpaint_fast`` stays light (no torch):

- ``from_pretrained(weights_dir, engine="torch", ...)`` -> ``AugPaint``: the embeddable engine (``embed.api``).
- ``AugPaintDataset(real_dir, weights, n_per_source, ...)``: a torch Dataset of real and generated pairs
  (``embed.aug_dataset``).
"""
__version__ = "0.1.0"

_LAZY = {"from_pretrained": "embed.api", "AugPaint": "embed.api", "AugmentedPair": "embed.api",
         "AugPaintDataset": "embed.aug_dataset"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
