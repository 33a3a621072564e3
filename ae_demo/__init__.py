"""A demo of the extension's main job without the WebUI: tiny random-weight SD1-architecture models built
from the real ldm classes, the real CLIP BPE tokenizer, a real k-diffusion sampler loop, and ae_lib.
Run: python -m ae_demo --help. Random weights show the mechanism, not image quality."""
