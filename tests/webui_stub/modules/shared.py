"""Stand-in for modules/shared.py (v1.10.1) with State (shared_state.py), the option defaults the covered
paths read (shared_options.py) and the command-line flags (cmd_args.py)."""

from __future__ import annotations

import datetime
import time
from types import SimpleNamespace
from typing import Any

from modules import devices

# modules/shared_options.py: defaults of every option the stand-in code paths read (same values as v1.10.1)
OPTION_DEFAULTS: dict[str, Any] = {
    "comma_padding_backtrack": 20,
    "emphasis": "Original",
    "CLIP_stop_at_last_layers": 1,
    "use_old_emphasis_implementation": False,
    "textual_inversion_add_hashes_to_infotext": True,
    "batch_cond_uncond": True,
    "skip_early_cond": 0.0,
    "s_min_uncond": 0.0,
    "s_min_uncond_all": False,
    "pad_cond_uncond": False,
    "pad_cond_uncond_v0": False,
    "persistent_cond_cache": True,
    "use_old_scheduling": False,
    "enable_quantization": False,
    "eta_ancestral": 1.0,
    "eta_ddim": 0.0,
    "s_churn": 0.0,
    "s_tmin": 0.0,
    "s_tmax": 0.0,
    "s_noise": 1.0,
    "always_discard_next_to_last_sigma": False,
    "use_old_karras_scheduler_sigmas": False,
    "sigma_min": 0.0,
    "sigma_max": 0.0,
    "rho": 0.0,
    "sgm_noise_multiplier": False,
    "img2img_fix_steps": False,
    "img2img_extra_noise": 0.0,
    "no_dpmpp_sde_batch_determinism": False,
    "randn_source": "GPU",
    "eta_noise_seed_delta": 0,
    "refiner_switch_by_sample_steps": False,
    "hires_fix_refiner_pass": "second pass",
    "hires_fix_use_firstpass_conds": False,
    "use_old_hires_fix_width_height": False,
    "live_preview_content": "Prompt",
    "live_previews_enable": True,
    "show_progress_every_n_steps": 10,
    "infotext_skip_pasting": [],
    "infotext_styles": "Apply if any",
    "auto_backcompat": True,
    "return_grid": True,
    "grid_save": True,
    "grid_only_if_multiple": True,
    "n_rows": -1,
    "grid_prevent_empty_spots": False,
    "enable_pnginfo": True,
    "initial_noise_multiplier": 1.0,
    "token_merging_ratio": 0.0,
    "token_merging_ratio_hr": 0.0,
    "token_merging_ratio_img2img": 0.0,
    "face_restoration": False,
    "face_restoration_model": "CodeFormer",
    "tiling": False,
    "sd_vae_decode_method": "Full",
    "sd_vae_encode_method": "Full",
    "inpainting_mask_weight": 1.0,
    "add_model_hash_to_info": True,
    "add_model_name_to_info": True,
    "add_vae_hash_to_info": True,
    "add_vae_name_to_info": True,
    "add_version_to_infotext": True,
    "add_user_name_to_info": False,
    "hide_samplers": [],
    "uni_pc_variant": "bh1",
    "uni_pc_skip_type": "time_uniform",
    "uni_pc_order": 3,
    "uni_pc_lower_order_final": True,
    "beta_dist_alpha": 0.6,
    "beta_dist_beta": 0.6,
    "samples_save": True,
    "samples_format": "png",  # modules/shared_options.py
    "save_incomplete_images": False,
    "img2img_color_correction": False,
    "img2img_background_color": "#ffffff",
    "overlay_inpaint": True,
    "enable_prompt_comments": True,
    "sdxl_crop_left": 0,
    "sdxl_crop_top": 0,
    "fp8_storage": "Disable",
    "cache_fp16_weight": False,
    "sd_model_checkpoint": None,
    "ui_reorder_list": [],
    "samplers_in_dropdown": True,
}


class OptionInfo:
    """modules/options.py:OptionInfo -- a setting's default, label and Settings-page section."""

    def __init__(self, default: Any = None, label: str = "", component: Any = None, component_args: Any = None,
                 onchange: Any = None, section: Any = None, refresh: Any = None, **kwargs: Any) -> None:
        self.default, self.label, self.component, self.component_args = default, label, component, component_args
        self.onchange, self.section, self.refresh = onchange, section, refresh
        self.do_not_save = False


class Options:
    """modules/options.py:Options -- attribute access to .data with defaults; set() used by override_settings."""

    def __init__(self) -> None:
        object.__setattr__(self, "data", dict(OPTION_DEFAULTS))
        object.__setattr__(self, "data_labels", {})

    def add_option(self, key: str, info: OptionInfo) -> None:
        """modules/options.py:Options.add_option -- registers the label; the default fills an unset value."""
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def __getattr__(self, item: str) -> Any:
        data = object.__getattribute__(self, "data")
        if item in data:
            return data[item]
        raise AttributeError(item)  # getattr(opts, name, default) falls back like v1.10.1

    def __setattr__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """modules/options.py:Options.set -- returns True when the value changed."""
        if self.data.get(key) == value:
            return False
        self.data[key] = value
        return True

    def get_default(self, key: str) -> Any:
        """modules/options.py:Options.get_default"""
        return OPTION_DEFAULTS.get(key)

    def reset(self) -> None:
        """stand-in only: restore every default (tests call this between runs), added options included."""
        self.data.clear()
        self.data.update({k: (list(v) if isinstance(v, list) else v) for k, v in OPTION_DEFAULTS.items()})
        self.data.update({k: info.default for k, info in self.data_labels.items()})


class State:
    """modules/shared_state.py:State -- the fields/methods processing and the samplers touch."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.job = ""
        self.job_no = 0
        self.job_count = 0
        self.processing_has_refined_job_count = False
        self.job_timestamp = "0"
        self.sampling_step = 0
        self.sampling_steps = 0
        self.current_latent = None
        self.current_image = None
        self.textinfo = None
        self.time_start = None

    def interrupt(self) -> None:
        """modules/shared_state.py:State.interrupt"""
        self.interrupted = True

    def skip(self) -> None:
        """modules/shared_state.py:State.skip"""
        self.skipped = True

    def stop_generating(self) -> None:
        """modules/shared_state.py:State.stop_generating"""
        self.stopping_generation = True

    def nextjob(self) -> None:
        """modules/shared_state.py:State.nextjob"""
        self.job_no += 1
        self.sampling_step = 0

    def begin(self, job: str = "(unknown)") -> None:
        """modules/shared_state.py:State.begin"""
        self.sampling_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.processing_has_refined_job_count = False
        self.job_no = 0
        self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        self.current_latent = None
        self.job = job
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None

    def end(self) -> None:
        """modules/shared_state.py:State.end"""
        self.job = ""
        self.job_count = 0


class _TotalTqdm:
    """modules/shared_total_tqdm.py:TotalTQDM -- progress only; no output here."""

    def update(self) -> None: ...

    def updateTotal(self, new_total: int) -> None: ...

    def clear(self) -> None: ...


class StyleDatabase:
    """modules/styles.py:StyleDatabase -- no styles are defined in the stand-in; prompts pass unchanged."""

    def __init__(self) -> None:
        self.styles: dict[str, Any] = {}

    def apply_styles_to_prompt(self, prompt: str, styles: list[str]) -> str:
        return prompt

    def apply_negative_styles_to_prompt(self, prompt: str, styles: list[str]) -> str:
        return prompt

    def extract_styles_from_prompt(self, prompt: str, negative_prompt: str):
        return [], prompt, negative_prompt


opts = Options()
# modules/cmd_args.py defaults; no_half=True because the CPU stand-in runs fp32 like `--no-half`
cmd_opts = SimpleNamespace(
    lowvram=False,
    medvram=False,
    medvram_sdxl=False,
    no_half=True,
    no_half_vae=True,
    upcast_sampling=False,
    xformers=False,
    api=False,
    nowebui=False,
    disable_nan_check=False,
    no_prompt_history=False,
    embeddings_dir="",
    hide_ui_dir_config=True,
    use_textbox_seed=False,
    skip_install=True,
)
state = State()
total_tqdm = _TotalTqdm()
prompt_styles = StyleDatabase()
sd_model: Any = None  # modules/shared.py:sd_model -- set by sd_models.load_model()
device = devices.device
parallel_processing_allowed = True
sd_upscalers: list = []  # no image upscalers: only the latent hires modes below work
latent_upscale_default_mode = "Latent"
latent_upscale_modes: dict[str, dict[str, Any]] = {  # modules/shared.py:latent_upscale_modes
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (antialiased)": {"mode": "bilinear", "antialias": True},
    "Latent (bicubic)": {"mode": "bicubic", "antialias": False},
    "Latent (bicubic antialiased)": {"mode": "bicubic", "antialias": True},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
    "Latent (nearest-exact)": {"mode": "nearest-exact", "antialias": False},
}
