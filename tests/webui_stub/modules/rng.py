"""Stand-in for modules/rng.py (v1.10.1): per-image seeded generators; opts.randn_source 'GPU' and 'CPU' both draw
from torch.Generator on the (CPU) device here; 'NV' (philox) is not covered."""

from __future__ import annotations

import torch
from modules import devices, shared


def randn(seed: int, shape, generator: torch.Generator | None = None) -> torch.Tensor:
    """modules/rng.py:randn -- seeds the global generator, then draws."""
    torch.manual_seed(seed)
    return torch.randn(shape, device=devices.device, generator=generator)


def randn_local(seed: int, shape) -> torch.Tensor:
    """modules/rng.py:randn_local -- a private generator seeded with `seed` (used for torchsde's Brownian trees)."""
    generator = torch.Generator(devices.cpu).manual_seed(int(seed))
    return torch.randn(shape, device=devices.cpu, generator=generator).to(devices.device)


def randn_without_seed(shape, generator: torch.Generator | None = None) -> torch.Tensor:
    """modules/rng.py:randn_without_seed"""
    return torch.randn(shape, device=devices.device, generator=generator)


def create_generator(seed: int) -> torch.Generator:
    """modules/rng.py:create_generator"""
    return torch.Generator(devices.device).manual_seed(int(seed))


def slerp(val, low, high):
    """modules/rng.py:slerp -- spherical interpolation used for variation seeds."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


class ImageRNG:
    """modules/rng.py:ImageRNG -- next() returns (B, *shape): the first call gives each image its seed's noise
    (variation seed slerped in; seed resize not covered), later calls continue each image's generator. That is
    what TorchHijack.randn_like hands to ancestral/SDE samplers, so batch members stay independent of batch size."""

    def __init__(self, shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0, seed_resize_from_w=0):
        self.shape = tuple(map(int, shape))
        self.seeds = seeds
        self.subseeds = subseeds
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.generators = [create_generator(seed) for seed in seeds]
        self.is_first = True

    def first(self) -> torch.Tensor:
        xs = []
        for i, (seed, generator) in enumerate(zip(self.seeds, self.generators, strict=False)):
            subnoise = None
            if self.subseeds is not None and self.subseed_strength != 0:
                subseed = 0 if i >= len(self.subseeds) else self.subseeds[i]
                subnoise = randn(subseed, self.shape)
            noise = randn(seed, self.shape, generator=generator)
            if subnoise is not None:
                noise = slerp(self.subseed_strength, noise, subnoise)
            xs.append(noise)
        ensd = shared.opts.eta_noise_seed_delta or 0
        if ensd:
            self.generators = [create_generator(seed + ensd) for seed in self.seeds]
        return torch.stack(xs).to(shared.device)

    def next(self) -> torch.Tensor:
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([randn_without_seed(self.shape, generator=g) for g in self.generators]).to(shared.device)


devices.randn_local = randn_local  # modules/rng.py (bottom): installed into devices
