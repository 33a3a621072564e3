"""One-call set-up of the A1111 v1.10.1 stand-in for a test: fresh options/state/caches, a tiny model loaded as
shared.sd_model, scripts loaded (the webui-root X/Y/Z stand-in, the given extensions, the built-ins) and both tabs'
script UIs built (before_ui callbacks first), like a WebUI start."""

from __future__ import annotations

from modules import errors, processing, script_callbacks, scripts, sd_hijack, sd_models, sd_unet, shared


def reset_host() -> None:
    """Options to defaults, fresh State, empty cond caches and error log, no replacement UNet."""
    shared.opts.reset()
    shared.state.reset()
    processing.StableDiffusionProcessing.cached_c = [None, None]
    processing.StableDiffusionProcessing.cached_uc = [None, None]
    processing.StableDiffusionProcessingTxt2Img.cached_hr_c = [None, None]
    processing.StableDiffusionProcessingTxt2Img.cached_hr_uc = [None, None]
    errors.reported.clear()
    sd_unet.current_unet = None
    sd_hijack.model_hijack.clear_comments()


def start_webui(*extension_dirs: str, model: str = "sd1", seed: int = 0) -> sd_models.TinySDModel:
    """reset_host, load scripts from the extension folders (webui.py: initialize_rest -> load_scripts), load a tiny
    model (so on_model_loaded callbacks registered at import fire), then build the script UIs."""
    reset_host()
    sd_models.checkpoints_list.clear()
    sd_models.checkpoint_aliases.clear()
    scripts.load_scripts(*extension_dirs)
    factory = sd_models.make_sd1_model if model == "sd1" else sd_models.make_sd2_model
    sd_model = sd_models.load_model(factory(seed))
    scripts.create_ui()
    script_callbacks.ui_settings_callback()  # modules/ui_settings.py:UiSettings.create_ui, during the UI build
    return sd_model

