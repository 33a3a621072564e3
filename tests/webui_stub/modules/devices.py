"""Stand-in for modules/devices.py (v1.10.1) on a CPU run with fp32 (what --use-cpu all --no-half gives)."""

from __future__ import annotations

import contextlib

import torch

cpu: torch.device = torch.device("cpu")
device: torch.device = cpu
dtype: torch.dtype = torch.float32
dtype_vae: torch.dtype = torch.float32
dtype_unet: torch.dtype = torch.float32
dtype_inference: torch.dtype = torch.float32
unet_needs_upcast: bool = False
fp8: bool = False
force_fp16: bool = False


def autocast(disable: bool = False):
    """modules/devices.py:autocast -- a null context when dtype or dtype_inference is fp32 (always here)."""
    if disable or force_fp16 or torch.float32 in (dtype, dtype_inference):
        return contextlib.nullcontext()
    return torch.autocast("cuda")  # pragma: no cover - unreachable on the CPU stand-in


def without_autocast(disable: bool = False):
    """modules/devices.py:without_autocast -- disables an active CUDA autocast, else a null context."""
    if torch.is_autocast_enabled() and not disable:
        return torch.autocast("cuda", enabled=False)
    return contextlib.nullcontext()


def cond_cast_unet(x: torch.Tensor) -> torch.Tensor:
    """modules/devices.py:cond_cast_unet"""
    return x.to(torch.float16) if force_fp16 else x


def cond_cast_float(x: torch.Tensor) -> torch.Tensor:
    """modules/devices.py:cond_cast_float"""
    return x.float() if unet_needs_upcast else x


def torch_gc() -> None:
    """modules/devices.py:torch_gc -- only empties CUDA caches; nothing to do on CPU."""


def torch_npu_set_device() -> None:
    """modules/devices.py:torch_npu_set_device -- NPU only."""


class NansException(Exception):
    """modules/devices.py:NansException"""


def test_for_nans(x: torch.Tensor, where: str) -> None:
    """modules/devices.py:test_for_nans -- raises only when the whole tensor is NaN (checks element 0 first)."""
    from modules import shared

    if shared.cmd_opts.disable_nan_check:
        return
    if not torch.isnan(x[(0,) * len(x.shape)]):
        return
    if not torch.all(torch.isnan(x)).item():
        return
    raise NansException(f"A tensor with all NaNs was produced in {where}.")
