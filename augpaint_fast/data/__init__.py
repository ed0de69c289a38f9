"""Data input/output: datasets of images + label maps (2-D files or NIfTI slices), resizing, image/label
files, and the crash-safe output writer. See :mod:`augpaint_fast.data.dataset` for the dataset layout."""
from .dataset import (
    Dataset,
    Item,
    Sample,
    ValidationSummary,
    load_training_images,
    resize_image,
    resize_label,
    resize_pair,
)
from .imageio import IMAGE_SUFFIXES, read_image, read_label, write_image_png, write_label_png
from .nifti import NiftiOptions
from .writer import OutputWriter

__all__ = [
    "Dataset",
    "Item",
    "Sample",
    "ValidationSummary",
    "NiftiOptions",
    "OutputWriter",
    "IMAGE_SUFFIXES",
    "load_training_images",
    "read_image",
    "read_label",
    "resize_image",
    "resize_label",
    "resize_pair",
    "write_image_png",
    "write_label_png",
]
