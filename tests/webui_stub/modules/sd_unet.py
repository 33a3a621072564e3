"""Stand-in for modules/sd_unet.py (v1.10.1). No replacement UNets exist here unless a test assigns one."""

from __future__ import annotations

from typing import Any

# modules/sd_unet.py:current_unet -- an SdUnet whose forward(x, timesteps, context, ...) replaces
# UNetModel.forward (create_unet_forward). Tests may assign an object with .forward to simulate TensorRT.
current_unet: Any = None
current_unet_option: Any = None


def apply_unet(option: Any = None) -> None:
    """modules/sd_unet.py:apply_unet -- opts.sd_unet 'Automatic' finds no SdUnet here, so nothing changes."""
