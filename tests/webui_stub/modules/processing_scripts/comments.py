"""Stand-in for modules/processing_scripts/comments.py (v1.10.1): strips '#' comments from the prompts in process()
-- which runs AFTER extension scripts' process(), so they still see the comments there."""

import re

from modules import scripts, shared


def strip_comments(text):
    """modules/processing_scripts/comments.py:strip_comments -- whole-line comments, then trailing comments."""
    text = re.sub(r"(^|\n)#[^\n]*(\n|$)", "\n", text)
    return re.sub(r"#[^\n]*(\n|$)", "\n", text)


class ScriptStripComments(scripts.Script):
    def title(self):
        return "Comments"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        if not shared.opts.enable_prompt_comments:
            return
        p.all_prompts = [strip_comments(x) for x in p.all_prompts]
        p.all_negative_prompts = [strip_comments(x) for x in p.all_negative_prompts]
        p.main_prompt = strip_comments(p.main_prompt)
        p.main_negative_prompt = strip_comments(p.main_negative_prompt)
        if getattr(p, "enable_hr", False):
            p.all_hr_prompts = [strip_comments(x) for x in p.all_hr_prompts]
            p.all_hr_negative_prompts = [strip_comments(x) for x in p.all_hr_negative_prompts]
            p.hr_prompt = strip_comments(p.hr_prompt)
            p.hr_negative_prompt = strip_comments(p.hr_negative_prompt)
