"""Torch device selection shared by datasets and algorithms."""

from __future__ import annotations

from typing import Any

from d4rl_lite.errors import UserInputError


def resolve_device(device: Any = "auto") -> Any:
    """``"auto"`` -> CUDA when available, else CPU; any other value is passed to ``torch.device``."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserInputError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu or auto")
    return dev
