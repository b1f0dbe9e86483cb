"""User-facing errors.

Every mistake a user can make (bad image, wrong layer, missing annotations, corrupt
checkpoint, ...) raises :class:`DFAError` with a message that names the problem and the
fix. The CLI prints it as one line, the widgets show it as a napari notification.
"""

from __future__ import annotations

__all__ = ["DFAError", "CheckpointError", "InputError"]


class DFAError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class CheckpointError(DFAError):
    """A model folder that cannot be loaded safely."""


class InputError(DFAError):
    """An image, label image or annotation that cannot be used as given."""
