"""Training of the VQ autoencoder and the unconditional latent diffusion U-Net."""
from .autoencoder import train_autoencoder
from .ldm import train_ldm

__all__ = ["train_autoencoder", "train_ldm"]
