"""User-facing errors.

Anything the user can cause (bad files, wrong checkpoints, unwritable output) raises `AugPaintError` with a
message that fits on one line; the CLI prints it as ``augpaint-fast: error: <message>`` and exits with 2.
"""


class AugPaintError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""
