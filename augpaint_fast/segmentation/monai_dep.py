"""The one place that imports MONAI, so a missing optional dependency is one clear error line."""
from __future__ import annotations

from ..host import optional_import


def require_monai():
    """Import and return the ``monai`` module, or raise AugPaintError saying how to install it."""
    return optional_import("monai", extra="seg", feature="segmentation", packages="monai")
