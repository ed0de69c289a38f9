"""augpaint-fast: AugPaint (latent-diffusion inpainting augmentation for few-label segmentation), fast."""
__version__ = "0.1.0"
