"""Choosing the torch device: ``auto`` / ``cpu`` / ``cuda`` / ``mps``."""

from __future__ import annotations

from napari_dfa.errors import DFAError

__all__ = ["DEVICES", "describe_device", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto"):
    """A ``torch.device`` for ``name``.

    ``auto`` picks CUDA, then Apple MPS, then the CPU. Asking explicitly for a device
    that is absent is refused with a message (no silent fallback): the user asked for it.
    """
    import torch

    name = (name or "auto").lower()
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise DFAError(
                f"device '{name}' was requested but CUDA is not available (torch {torch.__version__}, "
                f"{build}); use device 'auto' or 'cpu', or install a CUDA build of torch"
            )
        return torch.device(name)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DFAError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    raise DFAError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")


def describe_device(device, streams: int = 1) -> str:
    """Human-readable device name, e.g. ``cuda:0 (NVIDIA H100)``, ``cpu (2 threads)`` or,
    with concurrent compute ``streams``, ``cpu (2 threads, 2 streams)``."""
    import torch

    extra = f", {streams} streams" if streams > 1 else ""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)}{extra})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''}{extra})"
    return f"{device} ({streams} streams)" if extra else str(device)
