"""Attend-and-Excite for the AUTOMATIC1111 WebUI: the AlwaysOn script (thin; logic is in ae_lib / ae_webui)."""

from __future__ import annotations

from typing import Any

from modules import (
    script_callbacks,
    scripts,  # not `from ... import Script`: every Script in this namespace is registered
)

from ae_webui import lifecycle, maps, settings, token_table, ui, xyz


class AttendAndExciteScript(scripts.Script):
    def title(self) -> str:
        return "Attend and Excite"

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        components = ui.build(self.elem_id, extra=self._token_table)
        self.infotext_fields = ui.infotext_fields(components)
        self.paste_field_names = []
        return components

    def _token_table(self, controls: dict[str, Any]) -> None:
        token_table.attach(self.tabname, self.elem_id, controls)

    def process(self, p: Any, *args: Any) -> None:
        lifecycle.begin(p, args)

    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None:
        lifecycle.before_sampling(p)

    def post_sample(self, p: Any, ps: Any, *args: Any) -> None:
        lifecycle.end(p)

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        maps.keep(p, pp.image)

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        lifecycle.finish(p)
        maps.add_to_gallery(p, processed)


script_callbacks.on_before_ui(xyz.register_axes)
script_callbacks.on_ui_settings(settings.register)
