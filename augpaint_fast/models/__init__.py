"""Models: the VQ autoencoder and the latent-diffusion U-Net (plain PyTorch, CompVis LDM layouts)."""
from .autoencoder import VQAutoencoder
from .unet import UNet

__all__ = ["UNet", "VQAutoencoder"]
