"""Attend-and-Excite for the AUTOMATIC1111 WebUI: the AlwaysOn script (thin; logic is in ae_lib / ae_webui).

Every method the host calls, and every callback registered here, goes through ae_webui.boundary.guarded: an
error in our code is logged and A&E stands down, the host's generation and page go on (SD.Next calls `ui()`
unguarded for every API request).
"""

from __future__ import annotations

from typing import Any

from modules import (
    script_callbacks,
    scripts,  # not `from ... import Script`: every Script in this namespace is registered
)

from ae_webui import lifecycle, maps, settings, token_table, ui, xyz
from ae_webui.boundary import guarded
from ae_webui.state import write_image_infotext


class AttendAndExciteScript(scripts.Script):
    def title(self) -> str:
        return "Attend and Excite"

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    @guarded("building the UI", default=[])
    def ui(self, is_img2img: bool) -> list[Any]:
        components = ui.build(self.elem_id, extra=self._token_table)
        self.infotext_fields = ui.infotext_fields(components)
        self.paste_field_names = []
        return components

    def _token_table(self, controls: dict[str, Any]) -> None:
        token_table.attach(ui.tab_name(self), self.elem_id, controls)

    @guarded("process", generation=True)
    def process(self, p: Any, *args: Any) -> None:
        lifecycle.begin(p, args)

    @guarded("process_batch", generation=True)
    def process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        lifecycle.before_batch(p)

    @guarded("process_before_every_sampling", generation=True)
    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None:
        lifecycle.before_sampling(p, kwargs.get("x"))

    @guarded("post_sample", generation=True)
    def post_sample(self, p: Any, ps: Any, *args: Any) -> None:
        lifecycle.end(p)

    @guarded("postprocess_image", generation=True)
    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        write_image_infotext(p)
        maps.keep(p, pp.image)

    @guarded("postprocess", generation=True)
    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        lifecycle.finish(p)
        maps.add_to_gallery(p, processed)


script_callbacks.on_before_ui(guarded("registering the X/Y/Z axes")(xyz.register_axes))
script_callbacks.on_ui_settings(guarded("registering the settings")(settings.register))
if hasattr(script_callbacks, "on_after_process"):  # SD.Next: runs in process_images' finally, also on interrupt
    script_callbacks.on_after_process(guarded("after_process", generation=False)(lifecycle.end))
