"""Stand-in for modules/processing.py (v1.10.1): StableDiffusionProcessing, Processed, create_infotext and the
process_images / process_images_inner loop with the v1.10.1 hook order. The txt2img / img2img subclasses live in
_processing_kinds.py and are re-exported at the bottom. Stand-in extras: Processed.latents (final latents of all
batches, before VAE decode) and p.stub_latents (list per batch), so runs can be compared exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from modules import (
    devices,
    extra_networks,
    prompt_parser,
    rng,
    scripts,
    sd_models,
    sd_samplers,
    sd_samplers_common,
    shared,
)
from modules._processing_results import (  # noqa: F401 - re-exported as in v1.10.1
    DecodedSamples,
    Processed,
    create_infotext,
    decode_latent_batch,
    fix_seed,
    get_fixed_seed,
    program_version,
)
from modules.shared import opts, state
from PIL import Image

opt_C = 4  # modules/processing.py:opt_C (latent channels)
opt_f = 8  # modules/processing.py:opt_f (latent downscale)
last_params_txt: str | None = None  # what v1.10.1 would write to params.txt (batch 0, after process_batch)


def txt2img_image_conditioning(sd_model, x, width, height):
    """modules/processing.py:txt2img_image_conditioning -- plain 'crossattn' models get zeros (B, 5, 1, 1)."""
    return x.new_zeros(x.shape[0], 5, 1, 1, dtype=x.dtype, device=x.device)


@dataclass(repr=False)
class StableDiffusionProcessing:
    """modules/processing.py:StableDiffusionProcessing -- same fields/defaults; cached_c/cached_uc are class-level
    lists shared by every p (the persistent cond cache)."""

    sd_model: object = None
    outpath_samples: str = None
    outpath_grids: str = None
    prompt: str = ""
    prompt_for_display: str = None
    negative_prompt: str = ""
    styles: list[str] = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    seed_enable_extras: bool = True
    sampler_name: str = None
    scheduler: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    tiling: bool = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict[str, Any] = None
    overlay_images: list = None
    eta: float = None
    do_not_reload_embeddings: bool = False
    denoising_strength: float = None
    ddim_discretize: str = None
    s_min_uncond: float = None
    s_churn: float = None
    s_tmax: float = None
    s_tmin: float = None
    s_noise: float = None
    override_settings: dict[str, Any] = None
    override_settings_restore_afterwards: bool = True
    sampler_index: int = None
    refiner_checkpoint: str = None
    refiner_switch_at: float = None
    token_merging_ratio = 0
    token_merging_ratio_hr = 0
    disable_extra_networks: bool = False
    firstpass_image: Image.Image = None
    scripts_value: scripts.ScriptRunner = field(default=None, init=False)
    script_args_value: list = field(default=None, init=False)
    scripts_setup_complete: bool = field(default=False, init=False)
    cached_uc: ClassVar[list] = [None, None]
    cached_c: ClassVar[list] = [None, None]
    comments: dict = None
    sampler: sd_samplers_common.Sampler | None = field(default=None, init=False)
    is_using_inpainting_conditioning: bool = field(default=False, init=False)
    paste_to: tuple | None = field(default=None, init=False)
    is_hr_pass: bool = field(default=False, init=False)
    c: tuple = field(default=None, init=False)
    uc: tuple = field(default=None, init=False)
    rng: rng.ImageRNG | None = field(default=None, init=False)
    step_multiplier: int = field(default=1, init=False)
    color_corrections: list = field(default=None, init=False)
    all_prompts: list = field(default=None, init=False)
    all_negative_prompts: list = field(default=None, init=False)
    all_seeds: list = field(default=None, init=False)
    all_subseeds: list = field(default=None, init=False)
    iteration: int = field(default=0, init=False)
    main_prompt: str = field(default=None, init=False)
    main_negative_prompt: str = field(default=None, init=False)
    prompts: list = field(default=None, init=False)
    negative_prompts: list = field(default=None, init=False)
    seeds: list = field(default=None, init=False)
    subseeds: list = field(default=None, init=False)
    extra_network_data: dict = field(default=None, init=False)
    user: str = field(default=None, init=False)
    sd_model_name: str = field(default=None, init=False)
    sd_model_hash: str = field(default=None, init=False)
    sd_vae_name: str = field(default=None, init=False)
    sd_vae_hash: str = field(default=None, init=False)
    is_api: bool = field(default=False, init=False)

    def __post_init__(self):
        self.comments = {}
        if self.styles is None:
            self.styles = []
        self.sampler_noise_scheduler_override = None
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        self.script_args = self.script_args or {}
        self.refiner_checkpoint_info = None
        if not self.seed_enable_extras:
            self.subseed, self.subseed_strength, self.seed_resize_from_h, self.seed_resize_from_w = -1, 0, 0, 0
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c
        self.stub_latents = []

    def fill_fields_from_opts(self):
        """modules/processing.py:StableDiffusionProcessing.fill_fields_from_opts"""
        self.s_min_uncond = self.s_min_uncond if self.s_min_uncond is not None else opts.s_min_uncond
        self.s_churn = self.s_churn if self.s_churn is not None else opts.s_churn
        self.s_tmin = self.s_tmin if self.s_tmin is not None else opts.s_tmin
        self.s_tmax = (self.s_tmax if self.s_tmax is not None else opts.s_tmax) or float("inf")
        self.s_noise = self.s_noise if self.s_noise is not None else opts.s_noise

    @property
    def sd_model(self):  # noqa: F811 - v1.10.1 shadows the dataclass field with this property too
        return shared.sd_model

    @sd_model.setter
    def sd_model(self, value):
        pass

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        """modules/processing.py:StableDiffusionProcessing.script_args -- setting it (with scripts set) runs
        setup() of every script, once."""
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self):
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def comment(self, text):
        self.comments[text] = 1

    def txt2img_image_conditioning(self, x, width=None, height=None):
        self.is_using_inpainting_conditioning = self.sd_model.model.conditioning_key in {"hybrid", "concat"}
        return txt2img_image_conditioning(self.sd_model, x, width or self.width, height or self.height)

    def img2img_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        """modules/processing.py:...img2img_image_conditioning -- plain models: zeros (B, 5, 1, 1)."""
        return latent_image.new_zeros(latent_image.shape[0], 5, 1, 1)

    def init(self, all_prompts, all_seeds, all_subseeds):
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def close(self):
        """modules/processing.py:StableDiffusionProcessing.close -- called by the txt2img/API caller, not by
        process_images; clears the class cache only when opts.persistent_cond_cache is off."""
        self.sampler = None
        self.c = None
        self.uc = None
        if not opts.persistent_cond_cache:
            StableDiffusionProcessing.cached_c = [None, None]
            StableDiffusionProcessing.cached_uc = [None, None]

    def get_token_merging_ratio(self, for_hr=False):
        if for_hr:
            return (self.token_merging_ratio_hr or opts.token_merging_ratio_hr or self.token_merging_ratio
                    or opts.token_merging_ratio)
        return self.token_merging_ratio or opts.token_merging_ratio

    def setup_prompts(self):
        """modules/processing.py:StableDiffusionProcessing.setup_prompts -- all_prompts = batch_size * n_iter
        copies (styles applied)."""
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        elif isinstance(self.negative_prompt, list):
            self.all_prompts = [self.prompt] * len(self.negative_prompt)
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]
        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        if len(self.all_prompts) != len(self.all_negative_prompts):
            raise RuntimeError(f"Received a different number of prompts ({len(self.all_prompts)}) and negative "
                               f"prompts ({len(self.all_negative_prompts)})")
        self.all_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in self.all_prompts]
        self.all_negative_prompts = [shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles)
                                     for x in self.all_negative_prompts]
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    def cached_params(self, required_prompts, steps, extra_network_data, hires_steps=None, use_old_scheduling=False):
        """modules/processing.py:StableDiffusionProcessing.cached_params -- the cache key."""
        return (required_prompts, steps, hires_steps, use_old_scheduling, opts.CLIP_stop_at_last_layers,
                shared.sd_model.sd_checkpoint_info, extra_network_data, opts.sdxl_crop_left, opts.sdxl_crop_top,
                self.width, self.height, opts.fp8_storage, opts.cache_fp16_weight, opts.emphasis)

    def get_conds_with_caching(self, function, required_prompts, steps, caches, extra_network_data,
                               hires_steps=None):
        """modules/processing.py:StableDiffusionProcessing.get_conds_with_caching -- returns the cached object
        itself when the key matches (so the same cond tensors are reused across generations)."""
        params = self.cached_params(required_prompts, steps, extra_network_data, hires_steps,
                                    shared.opts.use_old_scheduling)
        for cache in caches:
            if cache[0] is not None and params == cache[0]:
                return cache[1]
        cache = caches[0]
        with devices.autocast():
            cache[1] = function(shared.sd_model, required_prompts, steps, hires_steps, shared.opts.use_old_scheduling)
        cache[0] = params
        return cache[1]

    def setup_conds(self):
        """modules/processing.py:StableDiffusionProcessing.setup_conds -- schedules over total_steps (x2 for
        second-order samplers): uc plain, c multicond (AND)."""
        prompts = prompt_parser.SdConditioning(self.prompts, width=self.width, height=self.height)
        negative_prompts = prompt_parser.SdConditioning(self.negative_prompts, width=self.width, height=self.height,
                                                        is_negative_prompt=True)
        sampler_config = sd_samplers.find_sampler_config(self.sampler_name)
        total_steps = sampler_config.total_steps(self.steps) if sampler_config else self.steps
        self.step_multiplier = total_steps // self.steps
        self.firstpass_steps = total_steps
        self.uc = self.get_conds_with_caching(prompt_parser.get_learned_conditioning, negative_prompts, total_steps,
                                              [self.cached_uc], self.extra_network_data)
        self.c = self.get_conds_with_caching(prompt_parser.get_multicond_learned_conditioning, prompts, total_steps,
                                             [self.cached_c], self.extra_network_data)

    def get_conds(self):
        return self.c, self.uc

    def parse_extra_network_prompts(self):
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def save_samples(self) -> bool:
        return (opts.samples_save and not self.do_not_save_samples
                and (opts.save_incomplete_images or (not state.interrupted and not state.skipped)))


def process_images(p: StableDiffusionProcessing) -> Processed:
    """modules/processing.py:process_images -- before_process, override_settings (restored afterwards), model
    reload, sampler/scheduler normalisation, then process_images_inner."""
    if p.scripts is not None:
        p.scripts.before_process(p)
    stored_opts = {k: opts.data[k] if k in opts.data else opts.get_default(k)
                   for k in p.override_settings if k in opts.data}
    try:
        if sd_models.checkpoint_aliases.get(p.override_settings.get("sd_model_checkpoint")) is None:
            p.override_settings.pop("sd_model_checkpoint", None)
            sd_models.reload_model_weights()
        for k, v in p.override_settings.items():
            opts.set(k, v, is_api=True, run_callbacks=False)
            if k == "sd_model_checkpoint":
                sd_models.reload_model_weights()
        sd_models.apply_token_merging(p.sd_model, p.get_token_merging_ratio())
        sd_samplers.fix_p_invalid_sampler_and_scheduler(p)
        res = _loop.process_images_inner(p)
    finally:
        sd_models.apply_token_merging(p.sd_model, 0)
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(opts, k, v)
    return res


from modules import _processing_loop as _loop  # noqa: E402 - the loop and the subclasses need the names above
from modules._processing_kinds import (  # noqa: E402, F401 - re-exported as in v1.10.1
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    old_hires_fix_first_pass_dimensions,
)

process_images_inner = _loop.process_images_inner
