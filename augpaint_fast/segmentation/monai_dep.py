"""The one place that imports MONAI, so a missing optional dependency is one clear error line."""
from __future__ import annotations

from ..errors import AugPaintError


def require_monai():
    """Import and return the ``monai`` module, or raise AugPaintError saying how to install it."""
    try:
        import monai
    except ImportError as exc:
        raise AugPaintError(f"segmentation needs MONAI ({exc}); install it with pip install 'augpaint-fast[seg]' "
                            f"(i.e. pip install monai)") from None
    return monai
