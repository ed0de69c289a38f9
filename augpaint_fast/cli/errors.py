"""Library parameter names -> command-line flags: the one place the CLI translates an error's wording.

Library code raises ``AugPaintError("steps must be ...", param="steps")``; the command line prints it as
``augpaint-fast: error: --steps must be ...``. A parameter is its flag with ``_`` as ``-`` unless listed here.
"""
from __future__ import annotations

import re

from ..errors import AugPaintError

# parameters whose flag is not ``--`` + the name with dashes
PARAM_FLAGS = {"mask_mode": "--mask", "fmt": "--format"}


def flag_for(param: str) -> str:
    """The flag the command line takes for the library parameter ``param`` (a flag is returned as it is)."""
    if param.startswith("-"):
        return param
    return PARAM_FLAGS.get(param, "--" + param.replace("_", "-"))


def error_line(exc: AugPaintError) -> str:
    """``exc``'s message with its parameter's first mention written as the command line's flag."""
    message = str(exc)
    param = getattr(exc, "param", None)
    if not param or param.startswith("-"):
        return message
    return re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag_for(param), message, count=1)
