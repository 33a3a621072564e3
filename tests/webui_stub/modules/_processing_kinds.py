"""Part of the modules/processing.py stand-in (v1.10.1): StableDiffusionProcessingTxt2Img (new sampler per batch and
per hires pass; latent hires modes only) and StableDiffusionProcessingImg2Img (one sampler created in init();
init_images or a preset p.init_latent; masks not covered). Re-exported by modules.processing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from modules import devices, extra_networks, images, prompt_parser, rng, sd_models, sd_samplers, shared
from modules.processing import StableDiffusionProcessing, decode_latent_batch, opt_f
from modules.sd_samplers_common import images_tensor_to_samples
from modules.shared import opts, state


def old_hires_fix_first_pass_dimensions(width, height):
    """modules/processing.py:old_hires_fix_first_pass_dimensions"""
    scale = math.sqrt(512 * 512 / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    """modules/processing.py:StableDiffusionProcessingTxt2Img"""

    enable_hr: bool = False
    denoising_strength: float = 0.75
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str = None
    hr_sampler_name: str = None
    hr_scheduler: str = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    force_task_id: str = None
    cached_hr_uc: ClassVar[list] = [None, None]
    cached_hr_c: ClassVar[list] = [None, None]
    hr_checkpoint_info: dict = field(default=None, init=False)
    hr_upscale_to_x: int = field(default=0, init=False)
    hr_upscale_to_y: int = field(default=0, init=False)
    truncate_x: int = field(default=0, init=False)
    truncate_y: int = field(default=0, init=False)
    applied_old_hires_behavior_to: tuple = field(default=None, init=False)
    latent_scale_mode: dict = field(default=None, init=False)
    hr_c: tuple | None = field(default=None, init=False)
    hr_uc: tuple | None = field(default=None, init=False)
    all_hr_prompts: list = field(default=None, init=False)
    all_hr_negative_prompts: list = field(default=None, init=False)
    hr_prompts: list = field(default=None, init=False)
    hr_negative_prompts: list = field(default=None, init=False)
    hr_extra_network_data: list = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        if self.firstphase_width != 0 or self.firstphase_height != 0:
            self.hr_upscale_to_x, self.hr_upscale_to_y = self.width, self.height
            self.width, self.height = self.firstphase_width, self.firstphase_height
        self.cached_hr_uc = StableDiffusionProcessingTxt2Img.cached_hr_uc
        self.cached_hr_c = StableDiffusionProcessingTxt2Img.cached_hr_c

    def calculate_target_resolution(self):
        """modules/processing.py:...Txt2Img.calculate_target_resolution (hr_scale or hr_resize_x/y)."""
        if self.hr_resize_x == 0 and self.hr_resize_y == 0:
            self.extra_generation_params["Hires upscale"] = self.hr_scale
            self.hr_upscale_to_x = int(self.width * self.hr_scale)
            self.hr_upscale_to_y = int(self.height * self.hr_scale)
            return
        self.extra_generation_params["Hires resize"] = f"{self.hr_resize_x}x{self.hr_resize_y}"
        if self.hr_resize_y == 0:
            self.hr_upscale_to_x, self.hr_upscale_to_y = self.hr_resize_x, self.hr_resize_x * self.height // self.width
        elif self.hr_resize_x == 0:
            self.hr_upscale_to_x, self.hr_upscale_to_y = self.hr_resize_y * self.width // self.height, self.hr_resize_y
        else:
            if self.width / self.height < self.hr_resize_x / self.hr_resize_y:
                self.hr_upscale_to_x = self.hr_resize_x
                self.hr_upscale_to_y = self.hr_resize_x * self.height // self.width
            else:
                self.hr_upscale_to_x = self.hr_resize_y * self.width // self.height
                self.hr_upscale_to_y = self.hr_resize_y
            self.truncate_x = (self.hr_upscale_to_x - self.hr_resize_x) // opt_f
            self.truncate_y = (self.hr_upscale_to_y - self.hr_resize_y) // opt_f

    def init(self, all_prompts, all_seeds, all_subseeds):
        """modules/processing.py:...Txt2Img.init -- hires bookkeeping and its infotext keys (callables included)."""
        if not self.enable_hr:
            return
        self.extra_generation_params["Denoising strength"] = self.denoising_strength
        if self.hr_checkpoint_name and self.hr_checkpoint_name != "Use same checkpoint":
            self.hr_checkpoint_info = sd_models.get_closet_checkpoint_match(self.hr_checkpoint_name)
            if self.hr_checkpoint_info is None:
                raise Exception(f"Could not find checkpoint with name {self.hr_checkpoint_name}")
            self.extra_generation_params["Hires checkpoint"] = self.hr_checkpoint_info.short_title
        if self.hr_sampler_name is not None and self.hr_sampler_name != self.sampler_name:
            self.extra_generation_params["Hires sampler"] = self.hr_sampler_name

        def get_hr_prompt(p, index, prompt_text, **kwargs):
            hr_prompt = p.all_hr_prompts[index]
            return hr_prompt if hr_prompt != prompt_text else None

        def get_hr_negative_prompt(p, index, negative_prompt, **kwargs):
            hr_negative_prompt = p.all_hr_negative_prompts[index]
            return hr_negative_prompt if hr_negative_prompt != negative_prompt else None

        self.extra_generation_params["Hires prompt"] = get_hr_prompt
        self.extra_generation_params["Hires negative prompt"] = get_hr_negative_prompt
        self.extra_generation_params["Hires schedule type"] = None
        if self.hr_scheduler is None:
            self.hr_scheduler = self.scheduler
        modes = shared.latent_upscale_modes
        self.latent_scale_mode = (modes.get(self.hr_upscaler, None) if self.hr_upscaler is not None
                                  else modes.get(shared.latent_upscale_default_mode, "nearest"))
        if self.latent_scale_mode is None:
            raise Exception(f"could not find upscaler named {self.hr_upscaler}")  # no image upscalers here
        self.calculate_target_resolution()
        if not state.processing_has_refined_job_count:
            if state.job_count == -1:
                state.job_count = self.n_iter
            state.job_count = state.job_count * 2
            state.processing_has_refined_job_count = True
        if self.hr_second_pass_steps:
            self.extra_generation_params["Hires steps"] = self.hr_second_pass_steps
        if self.hr_upscaler is not None:
            self.extra_generation_params["Hires upscaler"] = self.hr_upscaler

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        """modules/processing.py:...Txt2Img.sample -- NEW sampler, x = rng.next(), process_before_every_sampling,
        sampler.sample; with hires fix: reload the hires checkpoint, then sample_hr_pass."""
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        if self.firstpass_image is not None and self.enable_hr:  # the gallery "Upscale" button: no first pass
            image = np.moveaxis(np.array(self.firstpass_image).astype(np.float32) / 255.0, 2, 0)
            image = torch.from_numpy(np.expand_dims(image, axis=0)).to(shared.device, dtype=devices.dtype_vae)
            samples = images_tensor_to_samples(image, None, self.sd_model)
        else:
            x = self.rng.next()
            if self.scripts is not None:
                self.scripts.process_before_every_sampling(p=self, x=x, noise=x, c=conditioning,
                                                           uc=unconditional_conditioning)
            samples = self.sampler.sample(self, x, conditioning, unconditional_conditioning,
                                          image_conditioning=self.txt2img_image_conditioning(x))
            del x
            if not self.enable_hr:
                return samples
        with sd_models.SkipWritingToConfig():
            sd_models.reload_model_weights(info=self.hr_checkpoint_info)
        return self.sample_hr_pass(samples, None, seeds, subseeds, subseed_strength, prompts)

    def sample_hr_pass(self, samples, decoded_samples, seeds, subseeds, subseed_strength, prompts):
        """modules/processing.py:...Txt2Img.sample_hr_pass (latent upscale path)."""
        if shared.state.interrupted:
            return samples
        self.is_hr_pass = True
        self.sampler = sd_samplers.create_sampler(self.hr_sampler_name or self.sampler_name, self.sd_model)
        samples = torch.nn.functional.interpolate(samples, size=(self.hr_upscale_to_y // opt_f,
                                                                 self.hr_upscale_to_x // opt_f),
                                                  mode=self.latent_scale_mode["mode"],
                                                  antialias=self.latent_scale_mode["antialias"])
        image_conditioning = self.txt2img_image_conditioning(samples)  # inpainting_mask_weight stays 1.0
        shared.state.nextjob()
        samples = samples[:, :, self.truncate_y // 2:samples.shape[2] - (self.truncate_y + 1) // 2,
                          self.truncate_x // 2:samples.shape[3] - (self.truncate_x + 1) // 2]
        self.rng = rng.ImageRNG(samples.shape[1:], self.seeds, subseeds=self.subseeds,
                                subseed_strength=self.subseed_strength, seed_resize_from_h=self.seed_resize_from_h,
                                seed_resize_from_w=self.seed_resize_from_w)
        noise = self.rng.next()
        if not self.disable_extra_networks:
            with devices.autocast():
                extra_networks.activate(self, self.hr_extra_network_data)
        with devices.autocast():
            self.calculate_hr_conds()
        sd_models.apply_token_merging(self.sd_model, self.get_token_merging_ratio(for_hr=True))
        if self.scripts is not None:
            self.scripts.before_hr(self)
            self.scripts.process_before_every_sampling(p=self, x=samples, noise=noise, c=self.hr_c, uc=self.hr_uc)
        samples = self.sampler.sample_img2img(self, samples, noise, self.hr_c, self.hr_uc,
                                              steps=self.hr_second_pass_steps or self.steps,
                                              image_conditioning=image_conditioning)
        sd_models.apply_token_merging(self.sd_model, self.get_token_merging_ratio())
        self.sampler = None
        self.stub_final_latents = samples.detach().clone()
        decoded = decode_latent_batch(self.sd_model, samples, target_device=devices.cpu, check_for_nans=True)
        self.is_hr_pass = False
        return decoded

    def close(self):
        super().close()
        self.hr_c = None
        self.hr_uc = None
        if not opts.persistent_cond_cache:
            StableDiffusionProcessingTxt2Img.cached_hr_uc = [None, None]
            StableDiffusionProcessingTxt2Img.cached_hr_c = [None, None]

    def setup_prompts(self):
        """modules/processing.py:...Txt2Img.setup_prompts -- hr prompts default to the first-pass ones."""
        super().setup_prompts()
        if not self.enable_hr:
            return
        if self.hr_prompt == "":
            self.hr_prompt = self.prompt
        if self.hr_negative_prompt == "":
            self.hr_negative_prompt = self.negative_prompt
        n = self.batch_size * self.n_iter
        self.all_hr_prompts = self.hr_prompt if isinstance(self.hr_prompt, list) else n * [self.hr_prompt]
        self.all_hr_negative_prompts = (self.hr_negative_prompt if isinstance(self.hr_negative_prompt, list)
                                        else n * [self.hr_negative_prompt])

    def calculate_hr_conds(self):
        """modules/processing.py:...Txt2Img.calculate_hr_conds -- schedules over firstpass_steps with hires_steps."""
        if self.hr_c is not None:
            return
        hr_prompts = prompt_parser.SdConditioning(self.hr_prompts, width=self.hr_upscale_to_x,
                                                  height=self.hr_upscale_to_y)
        hr_negative_prompts = prompt_parser.SdConditioning(self.hr_negative_prompts, width=self.hr_upscale_to_x,
                                                           height=self.hr_upscale_to_y, is_negative_prompt=True)
        config = sd_samplers.find_sampler_config(self.hr_sampler_name or self.sampler_name)
        steps = self.hr_second_pass_steps or self.steps
        total_steps = config.total_steps(steps) if config else steps
        self.hr_uc = self.get_conds_with_caching(prompt_parser.get_learned_conditioning, hr_negative_prompts,
                                                 self.firstpass_steps, [self.cached_hr_uc, self.cached_uc],
                                                 self.hr_extra_network_data, total_steps)
        self.hr_c = self.get_conds_with_caching(prompt_parser.get_multicond_learned_conditioning, hr_prompts,
                                                self.firstpass_steps, [self.cached_hr_c, self.cached_c],
                                                self.hr_extra_network_data, total_steps)

    def setup_conds(self):
        """modules/processing.py:...Txt2Img.setup_conds -- in the hires pass (refiner switch) only hr conds."""
        if self.is_hr_pass:
            self.hr_c = None
            self.calculate_hr_conds()
            return
        super().setup_conds()
        self.hr_uc = None
        self.hr_c = None
        if self.enable_hr and self.hr_checkpoint_info is None and shared.opts.hires_fix_use_firstpass_conds:
            self.calculate_hr_conds()

    def get_conds(self):
        if self.is_hr_pass:
            return self.hr_c, self.hr_uc
        return super().get_conds()

    def parse_extra_network_prompts(self):
        res = super().parse_extra_network_prompts()
        if self.enable_hr:
            sl = slice(self.iteration * self.batch_size, (self.iteration + 1) * self.batch_size)
            self.hr_prompts = self.all_hr_prompts[sl]
            self.hr_negative_prompts = self.all_hr_negative_prompts[sl]
            self.hr_prompts, self.hr_extra_network_data = extra_networks.parse_prompts(self.hr_prompts)
        return res


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """modules/processing.py:StableDiffusionProcessingImg2Img (no mask / inpainting support in the stand-in)."""

    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float = None
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = None
    latent_mask: Any = None
    force_task_id: str = None
    image_mask: Any = field(default=None, init=False)
    nmask: torch.Tensor = field(default=None, init=False)
    image_conditioning: torch.Tensor = field(default=None, init=False)
    init_img_hash: str = field(default=None, init=False)
    mask_for_overlay: Any = field(default=None, init=False)
    init_latent: torch.Tensor = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        self.image_mask = self.mask
        self.mask = None
        self.initial_noise_multiplier = (opts.initial_noise_multiplier if self.initial_noise_multiplier is None
                                         else self.initial_noise_multiplier)

    def init(self, all_prompts, all_seeds, all_subseeds):
        """modules/processing.py:...Img2Img.init -- creates THE sampler of this run, then the init latent (from
        init_images, or a latent the test preset in p.init_latent)."""
        self.extra_generation_params["Denoising strength"] = self.denoising_strength
        self.image_cfg_scale = self.image_cfg_scale if shared.sd_model.cond_stage_key == "edit" else None
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        if self.image_mask is not None:
            raise NotImplementedError("img2img masks / inpainting are not covered by the stand-in")
        if self.init_images is None and self.init_latent is not None:
            self.image_conditioning = self.img2img_image_conditioning(None, self.init_latent)
            return
        imgs = []
        for img in self.init_images:
            image = images.resize_image(self.resize_mode, images.flatten(img, opts.img2img_background_color),
                                        self.width, self.height)
            imgs.append(np.moveaxis(np.array(image).astype(np.float32) / 255.0, 2, 0))
        if len(imgs) == 1:
            batch_images = np.expand_dims(imgs[0], axis=0).repeat(self.batch_size, axis=0)
        elif len(imgs) <= self.batch_size:
            self.batch_size = len(imgs)
            batch_images = np.array(imgs)
        else:
            raise RuntimeError(f"bad number of images passed: {len(imgs)}; expecting {self.batch_size} or less")
        image = torch.from_numpy(batch_images).to(shared.device, dtype=devices.dtype_vae)
        self.init_latent = images_tensor_to_samples(image, None, self.sd_model)
        self.image_conditioning = self.img2img_image_conditioning(image * 2 - 1, self.init_latent)

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        """modules/processing.py:...Img2Img.sample -- the SAME sampler every batch."""
        x = self.rng.next()
        if self.initial_noise_multiplier != 1.0:
            self.extra_generation_params["Noise multiplier"] = self.initial_noise_multiplier
            x *= self.initial_noise_multiplier
        if self.scripts is not None:
            self.scripts.process_before_every_sampling(p=self, x=self.init_latent, noise=x, c=conditioning,
                                                       uc=unconditional_conditioning)
        return self.sampler.sample_img2img(self, self.init_latent, x, conditioning, unconditional_conditioning,
                                           image_conditioning=self.image_conditioning)

    def get_token_merging_ratio(self, for_hr=False):
        overridden = "token_merging_ratio" in self.override_settings and opts.token_merging_ratio
        return self.token_merging_ratio or overridden or opts.token_merging_ratio_img2img or opts.token_merging_ratio
