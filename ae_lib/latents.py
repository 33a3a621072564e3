"""The two latent parameterisations a host may hold, and the conversion of A&E's update between them.

The engine updates z (the DDPM latent the UNet sees): z <- z - alpha * dL/dz.
- Timestep samplers (DDIM, PLMS) hold x = z: nothing to convert.
- k-diffusion samplers hold x = z * sqrt(1 + sigma^2) and feed the UNet x * c_in, c_in = 1/sqrt(1 + sigma^2).
  Running the engine on z = x * c_in and mapping back, x' = z' / c_in, is exactly
  x' = x - alpha * (1 + sigma^2) * dL/dx, the paper's update expressed in x.
A host that computes its own input scaling (ComfyUI's model_sampling.calculate_input) gives it as `scale`.
"""

from __future__ import annotations

import torch


def c_in(sigma: torch.Tensor) -> torch.Tensor:
    """k-diffusion's input scaling for eps/v DDPM models, broadcast over (B, C, H, W)."""
    return (1.0 / (sigma.double() ** 2 + 1.0).sqrt()).view(-1, 1, 1, 1)


def to_model_latent(x: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
    """z from the sampler's x (sigma None: timestep family, x is z)."""
    return scale_to_z(x, None if sigma is None else c_in(sigma))


def apply_model_update(x: torch.Tensor, z: torch.Tensor, z_new: torch.Tensor, sigma: torch.Tensor | None) -> None:
    """x += (z_new - z) / c_in, in place: the sampler's own latent moves, and an unchanged row stays bit-exact.

    The WebUI glue's write-back since its first release: z_new - z in z's dtype, then float64 (apply_scaled_update
    subtracts in float64; the two differ in the last bits, which sampling grows to ~1e-4 over a run)."""
    delta = (z_new - z).double()
    if sigma is not None:
        delta = delta / c_in(sigma)
    x.add_(delta.to(x.dtype))


def scale_to_z(x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """z = x * scale (float64 arithmetic, x's dtype), a new normal tensor also where x is an inference tensor."""
    return x.clone() if scale is None else (x.to(torch.float64) * scale).to(x.dtype)


def apply_scaled_update(x: torch.Tensor, z: torch.Tensor, z_new: torch.Tensor, scale: torch.Tensor | None) -> None:
    """x += (z_new - z) / scale in place (float64 arithmetic); an unchanged row stays bit-exact."""
    delta = z_new.to(torch.float64) - z.to(torch.float64)
    if scale is not None:
        delta = delta / scale
    x.add_(delta.to(x.dtype))
