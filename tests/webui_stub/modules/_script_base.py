"""Part of the modules/scripts.py stand-in (v1.10.1): the hook-argument classes, Script and ScriptBuiltinUI.
Re-exported by modules.scripts (import them from there, as extensions do)."""

from __future__ import annotations

import re

AlwaysVisible = object()  # modules/scripts.py:AlwaysVisible


class MaskBlendArgs:
    """modules/scripts.py:MaskBlendArgs -- is_final_blend is True when no denoiser is given."""

    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


class PostSampleArgs:
    """modules/scripts.py:PostSampleArgs"""

    def __init__(self, samples):
        self.samples = samples


class PostprocessImageArgs:
    """modules/scripts.py:PostprocessImageArgs"""

    def __init__(self, image):
        self.image = image


class PostProcessMaskOverlayArgs:
    """modules/scripts.py:PostProcessMaskOverlayArgs"""

    def __init__(self, index, mask_for_overlay, overlay_image):
        self.index = index
        self.mask_for_overlay = mask_for_overlay
        self.overlay_image = overlay_image


class PostprocessBatchListArgs:
    """modules/scripts.py:PostprocessBatchListArgs"""

    def __init__(self, images):
        self.images = images


class Script:
    """modules/scripts.py:Script -- hook names and signatures as in v1.10.1; the base versions do nothing."""

    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    on_before_component_elem_id = None
    on_after_component_elem_id = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):
        """modules/scripts.py:Script.on_before_component"""
        if self.on_before_component_elem_id is None:
            self.on_before_component_elem_id = []
        self.on_before_component_elem_id.append((elem_id, callback))

    def on_after_component(self, callback, *, elem_id):
        """modules/scripts.py:Script.on_after_component"""
        if self.on_after_component_elem_id is None:
            self.on_after_component_elem_id = []
        self.on_after_component_elem_id.append((elem_id, callback))

    def describe(self):
        return ""

    def elem_id(self, item_id):
        """modules/scripts.py:Script.elem_id -- 'script_' + (tab + '_' when shown the same on both tabs) +
        title lower-cased, whitespace -> '_', other non [a-z_0-9] dropped, + '_' + item_id."""
        need_tabname = self.show(True) == self.show(False)
        tabname = f"{'img2img' if self.is_img2img else 'txt2img'}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"

    def before_hr(self, p, *args):
        pass


class ScriptBuiltinUI(Script):
    """modules/scripts.py:ScriptBuiltinUI -- setup() skipped for API calls; ids without the 'script_' prefix."""

    setup_for_ui_only = True

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabname = ("img2img" if self.is_img2img else "txt2img") + "_" if need_tabname else ""
        return f"{tabname}{item_id}"

    def show(self, is_img2img):
        return AlwaysVisible
