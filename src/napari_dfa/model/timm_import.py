"""Import ``timm`` even where torchvision's compiled operators cannot load.

timm imports torchvision, and a torchvision wheel built against a different torch (for
example the PyPI wheel beside a CPU-only torch) fails at import: its ``_C`` extension
does not load, so the operators ``torchvision::nms`` / ``qnms`` do not exist, and
registering their fake (meta) kernels raises ``operator torchvision::nms does not exist``.
No backbone uses those operators, so :func:`import_timm` retries the import with those
registrations skipped.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

from napari_dfa.errors import DFAError

__all__ = ["import_timm"]

_MISSING_OP = "does not exist"


def import_timm() -> ModuleType:
    """Return the ``timm`` module; :class:`DFAError` with the fix if it cannot be imported."""
    try:
        import timm
    except RuntimeError as exc:
        if _MISSING_OP not in str(exc):
            raise _import_error(exc) from exc
        _forget("torchvision", "timm")
        try:
            with _skip_fakes_of_missing_ops():
                import torchvision  # noqa: F401
            import timm
        except Exception as exc2:
            _forget("torchvision", "timm")
            raise _import_error(exc2) from exc2
    except Exception as exc:
        raise _import_error(exc) from exc
    return timm


def _import_error(exc: BaseException) -> DFAError:
    return DFAError(
        f"cannot import timm / torchvision ({type(exc).__name__}: {exc}); install a torchvision built for "
        f"your torch {torch.__version__} (pip install torch==<version> torchvision==<matching version> "
        "from the same index) and timm>=1.0"
    )


def _forget(*packages: str) -> None:
    """Drop partially imported modules of ``packages`` so they can be imported again."""
    for name in list(sys.modules):
        if name.split(".", 1)[0] in packages:
            del sys.modules[name]


def _op_exists(op: Any) -> bool:
    if not isinstance(op, str) or "::" not in op:
        return True
    namespace, name = op.split("::", 1)
    return hasattr(getattr(torch.ops, namespace), name.split(".", 1)[0])


@contextlib.contextmanager
def _skip_fakes_of_missing_ops() -> Iterator[None]:
    """Make ``torch.library.register_fake`` a no-op for operators that do not exist."""
    original = torch.library.register_fake

    def register_fake(op: Any, func: Any = None, /, *args: Any, **kwargs: Any) -> Any:
        if _op_exists(op):
            return original(op, func, *args, **kwargs)
        return func if func is not None else (lambda f: f)

    torch.library.register_fake = register_fake
    try:
        yield
    finally:
        torch.library.register_fake = original
