"""A recording AlwaysOn script used by tests/test_webui_stub.py: it appends (hook, p, args, p.sampler, extra) to
`calls` for every hook, and records basedir()/sys.path[0] at import time."""

import sys

import gradio as gr
from modules import scripts
from modules.ui_components import InputAccordion

IMPORT_BASEDIR = scripts.basedir()
IMPORT_SYS_PATH0 = sys.path[0]
calls = []


class RecorderScript(scripts.Script):
    fail_in = None

    def title(self):
        return "AE Recorder"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with InputAccordion(False, label="Recorder", elem_id=self.elem_id("enable")) as enabled:
            scale = gr.Slider(minimum=0, maximum=50, value=20.0, step=1, label="Scale", elem_id=self.elem_id("scale"))
        self.infotext_fields = [(enabled, lambda d: "Rec scale" in d), (scale, "Rec scale")]
        return [enabled, scale]

    def _rec(self, name, p, args, **extra):
        calls.append((name, p, args, p.sampler, extra))
        if self.fail_in == name:
            raise RuntimeError("boom in " + name)

    def setup(self, p, *args):
        self._rec("setup", p, args, steps=p.steps)

    def before_process(self, p, *args):
        self._rec("before_process", p, args)

    def process(self, p, *args):
        self._rec("process", p, args, steps=p.steps, prompts=list(p.all_prompts))

    def before_process_batch(self, p, *args, **kwargs):
        self._rec("before_process_batch", p, args, batch_number=kwargs["batch_number"])

    def after_extra_networks_activate(self, p, *args, **kwargs):
        self._rec("after_extra_networks_activate", p, args)

    def process_batch(self, p, *args, **kwargs):
        self._rec("process_batch", p, args, prompts=list(kwargs["prompts"]))

    def process_before_every_sampling(self, p, *args, **kwargs):
        self._rec("process_before_every_sampling", p, args, hr=p.is_hr_pass, x=kwargs["x"])

    def before_hr(self, p, *args):
        self._rec("before_hr", p, args)

    def post_sample(self, p, ps, *args):
        self._rec("post_sample", p, args)

    def postprocess_batch(self, p, *args, **kwargs):
        self._rec("postprocess_batch", p, args)

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        self._rec("postprocess_batch_list", p, args)

    def postprocess_image(self, p, pp, *args):
        self._rec("postprocess_image", p, args)

    def postprocess_maskoverlay(self, p, ppmo, *args):
        self._rec("postprocess_maskoverlay", p, args)

    def postprocess_image_after_composite(self, p, pp, *args):
        self._rec("postprocess_image_after_composite", p, args)

    def postprocess(self, p, processed, *args):
        self._rec("postprocess", p, args)
