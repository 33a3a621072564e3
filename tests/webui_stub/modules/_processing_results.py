"""Part of the modules/processing.py stand-in (v1.10.1): Processed, create_infotext, seeds and latent decoding.
Re-exported by modules.processing."""

from __future__ import annotations

import json
import random

import torch
from modules import devices, errors, infotext_utils, sd_samplers, sd_samplers_common
from modules.shared import opts, state


class Processed:
    """modules/processing.py:Processed (main fields) + .latents (stand-in)."""

    def __init__(self, p, images_list, seed=-1, info="", subseed=None, all_prompts=None, all_negative_prompts=None,
                 all_seeds=None, all_subseeds=None, index_of_first_image=0, infotexts=None, comments=""):
        self.images = images_list
        self.prompt = p.prompt if not isinstance(p.prompt, list) else p.prompt[0]
        self.negative_prompt = p.negative_prompt if not isinstance(p.negative_prompt, list) else p.negative_prompt[0]
        self.seed = int(seed if not isinstance(seed, list) else seed[0]) if seed is not None else -1
        self.subseed = int(subseed if not isinstance(subseed, list) else subseed[0]) if subseed is not None else -1
        self.subseed_strength = p.subseed_strength
        self.info = info
        self.comments = "".join(f"{comment}\n" for comment in p.comments)
        self.width, self.height = p.width, p.height
        self.sampler_name = p.sampler_name
        self.cfg_scale = p.cfg_scale
        self.steps = p.steps
        self.batch_size = p.batch_size
        self.denoising_strength = getattr(p, "denoising_strength", None)
        self.extra_generation_params = p.extra_generation_params
        self.index_of_first_image = index_of_first_image
        self.styles = p.styles
        self.job_timestamp = state.job_timestamp
        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)
        self.version = program_version()
        lat = getattr(p, "stub_latents", None)
        self.latents = torch.cat(lat) if lat else None

    def js(self):
        return json.dumps({"prompt": self.all_prompts[0], "all_prompts": self.all_prompts, "seed": self.seed,
                           "all_seeds": self.all_seeds, "infotexts": self.infotexts,
                           "extra_generation_params": self.extra_generation_params}, default=lambda o: None)

    def infotext(self, p, index):
        return create_infotext(p, self.all_prompts, self.all_seeds, self.all_subseeds, comments=[],
                               position_in_batch=index % self.batch_size, iteration=index // self.batch_size)


class DecodedSamples(list):
    """modules/processing.py:DecodedSamples -- marks hires output as already decoded."""

    already_decoded = True


def decode_latent_batch(model, batch, target_device=None, check_for_nans=False):
    """modules/processing.py:decode_latent_batch -- one image at a time."""
    samples = DecodedSamples()
    if check_for_nans:
        devices.test_for_nans(batch, "unet")
    for i in range(batch.shape[0]):
        sample = sd_samplers_common.decode_first_stage(model, batch[i:i + 1])[0]
        samples.append(sample.to(target_device) if target_device is not None else sample)
    return samples


def get_fixed_seed(seed):
    """modules/processing.py:get_fixed_seed -- -1/''/None -> random."""
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except Exception:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def fix_seed(p):
    """modules/processing.py:fix_seed"""
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def program_version() -> str:
    """modules/processing.py:program_version (launch.git_tag())"""
    return "v1.10.1"


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                    use_main_prompt=False, index=None, all_negative_prompts=None):
    """modules/processing.py:create_infotext -- built-in keys, then p.extra_generation_params, then Version/User;
    list values indexed by `index`, callables called with **locals(), None dropped, values quote()d."""
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size
    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts
    clip_skip = getattr(p, "clip_skip", opts.CLIP_stop_at_last_layers)
    enable_hr = getattr(p, "enable_hr", False)
    token_merging_ratio = p.get_token_merging_ratio()
    token_merging_ratio_hr = p.get_token_merging_ratio(for_hr=True)
    prompt_text = p.main_prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.main_negative_prompt if use_main_prompt else all_negative_prompts[index]
    uses_ensd = opts.eta_noise_seed_delta != 0 and _uses_ensd(p)
    generation_params = {
        "Steps": p.steps, "Sampler": p.sampler_name, "Schedule type": p.scheduler, "CFG scale": p.cfg_scale,
        "Image CFG scale": getattr(p, "image_cfg_scale", None),
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Face restoration": opts.face_restoration_model if p.restore_faces else None,
        "Size": f"{p.width}x{p.height}",
        "Model hash": p.sd_model_hash if opts.add_model_hash_to_info else None,
        "Model": p.sd_model_name if opts.add_model_name_to_info else None,
        "FP8 weight": None, "Cache FP16 weight for LoRA": None,
        "VAE hash": p.sd_vae_hash if opts.add_vae_hash_to_info else None,
        "VAE": p.sd_vae_name if opts.add_vae_name_to_info else None,
        "Variation seed": (None if p.subseed_strength == 0 else
                           (p.all_subseeds[0] if use_main_prompt else all_subseeds[index])),
        "Variation seed strength": (None if p.subseed_strength == 0 else p.subseed_strength),
        "Seed resize from": (None if p.seed_resize_from_w <= 0 or p.seed_resize_from_h <= 0
                             else f"{p.seed_resize_from_w}x{p.seed_resize_from_h}"),
        "Denoising strength": p.extra_generation_params.get("Denoising strength"),
        "Conditional mask weight": None,
        "Clip skip": None if clip_skip <= 1 else clip_skip,
        "ENSD": opts.eta_noise_seed_delta if uses_ensd else None,
        "Token merging ratio": None if token_merging_ratio == 0 else token_merging_ratio,
        "Token merging ratio hr": None if not enable_hr or token_merging_ratio_hr == 0 else token_merging_ratio_hr,
        "Init image hash": getattr(p, "init_img_hash", None),
        "RNG": opts.randn_source if opts.randn_source != "GPU" else None,
        "Tiling": "True" if p.tiling else None,
        **p.extra_generation_params,
        "Version": program_version() if opts.add_version_to_infotext else None,
        "User": p.user if opts.add_user_name_to_info else None,
    }
    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**locals())
        except Exception:
            errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
            generation_params[key] = None
    text = ", ".join([k if k == v else f"{k}: {infotext_utils.quote(v)}"
                      for k, v in generation_params.items() if v is not None])
    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt_text}{negative_prompt_text}\n{text}".strip()


def _uses_ensd(p) -> bool:
    # modules/sd_samplers_common.py:is_sampler_using_eta_noise_seed_delta
    config = sd_samplers.find_sampler_config(p.sampler_name)
    eta = p.eta
    if eta is None and p.sampler is not None:
        eta = p.sampler.eta
    if eta is None and config is not None:
        eta = 0 if config.options.get("default_eta_is_0", False) else 1.0
    return eta != 0 and config.options.get("uses_ensd", False)
