"""Stand-in for modules/ui_components.py (v1.10.1), on the WebUI's gradio 3.41.2."""

from __future__ import annotations

import gradio as gr


class FormComponent:
    """modules/ui_components.py:FormComponent"""

    def get_expected_parent(self):
        return gr.components.Form


class ToolButton(FormComponent, gr.Button):
    """modules/ui_components.py:ToolButton"""

    def __init__(self, *args, **kwargs):
        classes = kwargs.pop("elem_classes", [])
        super().__init__(*args, elem_classes=["tool", *classes], **kwargs)

    def get_block_name(self):
        return "button"


class FormRow(FormComponent, gr.Row):
    """modules/ui_components.py:FormRow"""

    def get_block_name(self):
        return "row"


class FormColumn(FormComponent, gr.Column):
    """modules/ui_components.py:FormColumn"""

    def get_block_name(self):
        return "column"


class FormGroup(FormComponent, gr.Group):
    """modules/ui_components.py:FormGroup"""

    def get_block_name(self):
        return "group"


class FormHTML(FormComponent, gr.HTML):
    """modules/ui_components.py:FormHTML"""

    def get_block_name(self):
        return "html"


class InputAccordion(gr.Checkbox):
    """modules/ui_components.py:InputAccordion -- a hidden Checkbox (its bool value is the script arg) with
    elem_id '<id>-checkbox', plus a gr.Accordion with the given elem_id whose open state JS keeps in sync."""

    global_index = 0

    def __init__(self, value, **kwargs):
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordion.global_index}"
            InputAccordion.global_index += 1
        super().__init__(value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})
        self.change(
            fn=None,
            _js='function(checked){ inputAccordionChecked("' + self.accordion_id + '", checked); }',
            inputs=[self],
        )
        self.accordion = gr.Accordion(
            **{
                **kwargs,
                "elem_id": self.accordion_id,
                "label": kwargs.get("label", "Accordion"),
                "elem_classes": ["input-accordion"],
                "open": value,
            }
        )

    def extra(self):
        """modules/ui_components.py:InputAccordion.extra -- a column in the accordion header."""
        return gr.Column(elem_id=self.accordion_id + "-extra", elem_classes="input-accordion-extra", min_width=0)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self):
        return "checkbox"
