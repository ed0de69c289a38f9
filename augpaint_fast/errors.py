"""User-facing errors.

Anything the user can cause (bad files, wrong checkpoints, unwritable output) raises `AugPaintError` with a
message that fits on one line; the CLI prints it as ``augpaint-fast: error: <message>`` and exits with 2.

Library code names its own parameters, not command-line flags: ``AugPaintError("steps must be ...",
param="steps")``. The command line rewrites ``param`` in the message into its flag (``--steps``) in one place,
``augpaint_fast/cli/errors.py``; a library caller sees the parameter it passed.
"""
from __future__ import annotations


class AugPaintError(Exception):
    """An error caused by the user's input, reported as one line without a traceback.

    ``param``, when given, is the name of the parameter at fault as it appears in the message.
    """

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param

    def __reduce__(self):  # keeps ``param`` across processes (Ray workers raise these)
        return _rebuild, (str(self), self.param)


def _rebuild(message: str, param: str | None) -> AugPaintError:
    return AugPaintError(message, param=param)
