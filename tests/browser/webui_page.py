"""A WebUI-like page for the browser test, served on 127.0.0.1 in its own process.

Built like the WebUI builds txt2img/img2img (with the tests/webui_stub stand-in of `modules.*`): the
extension's scripts are loaded by modules.scripts, a tiny SD1 model is loaded, and in each tab the prompt box
`{tab}_prompt` comes first, then the script runner's UI (so the real `ui()` of scripts/attend_and_excite.py).
`<head>` gets webui_host.js (the WebUI's script.js helpers) and javascript/*.js, the body style.css, by
patching gradio's TemplateResponse as modules/ui_gradio_extensions.py:reload_javascript does.

Each tab also has a test-only "echo" button that copies the Subjects and Groups values through Python, to show
that gradio (not just the DOM) holds what the token table wrote.

Run: python -m tests.browser.webui_page --port 7860  (prints "READY <url>" once serving).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "tests" / "webui_stub"
HOST_JS = Path(__file__).with_name("webui_host.js")
TABS = (("txt2img", False), ("img2img", True))
SCRIPT_TITLE = "Attend and Excite"


def webpath(path: Path) -> str:
    # modules/ui_gradio_extensions.py:webpath: gradio's file= route, with the mtime against stale caches
    return f"file={path.as_posix()}?{os.path.getmtime(path)}"


def javascript_html() -> str:
    scripts = [HOST_JS, *sorted((ROOT / "javascript").glob("*.js"))]
    return "".join(f'<script type="text/javascript" src="{webpath(p)}"></script>\n' for p in scripts)


def css_html() -> str:
    return f'<link rel="stylesheet" property="stylesheet" href="{webpath(ROOT / "style.css")}">'


def patch_template_response(gr: Any) -> None:
    """modules/ui_gradio_extensions.py:reload_javascript: scripts before </head>, styles before </body>."""
    original = gr.routes.templates.TemplateResponse
    js, css = javascript_html(), css_html()

    def template_response(*args: Any, **kwargs: Any) -> Any:
        res = original(*args, **kwargs)
        res.body = res.body.replace(b"</head>", f"{js}</head>".encode())
        res.body = res.body.replace(b"</body>", f"{css}</body>".encode())
        res.init_headers()
        return res

    gr.routes.templates.TemplateResponse = template_response


def _control(runner: Any, name: str) -> Any:
    script = next(s for s in runner.alwayson_scripts if s.title() == SCRIPT_TITLE)
    return next(c for c in script.controls if (getattr(c, "elem_id", None) or "").endswith(f"_{name}"))


def _tab(gr: Any, runner: Any, tab: str, is_img2img: bool) -> None:
    gr.Textbox(label="Prompt", elem_id=f"{tab}_prompt", lines=2)
    runner.initialize_scripts(is_img2img)  # modules/ui.py:create_ui, per tab
    runner.prepare_ui()
    runner.setup_ui()
    echo = gr.Textbox(label="Subjects as Python sees them", elem_id=f"{tab}_test_echo")
    gr.Button("Echo subjects", elem_id=f"{tab}_test_echo_button").click(
        lambda value: value, inputs=[_control(runner, "subjects")], outputs=[echo]
    )
    echo_groups = gr.Textbox(label="Groups as Python sees them", elem_id=f"{tab}_test_echo_groups")
    gr.Button("Echo groups", elem_id=f"{tab}_test_echo_groups_button").click(
        lambda value: value, inputs=[_control(runner, "groups")], outputs=[echo_groups]
    )


def build_demo() -> Any:
    sys.path[:0] = [str(STUB), str(ROOT)]
    import gradio as gr
    from modules import script_callbacks, scripts, sd_models
    from webui_stub_env import reset_host

    reset_host()
    scripts.load_scripts(str(ROOT))
    sd_models.load_model(sd_models.make_sd1_model(0))
    script_callbacks.before_ui_callback()
    runners = {"txt2img": scripts.scripts_txt2img, "img2img": scripts.scripts_img2img}
    with gr.Blocks(title="Attend and Excite: token picker test", analytics_enabled=False) as demo, gr.Tabs():
        for tab, is_img2img in TABS:
            with gr.Tab(tab, id=tab, elem_id=f"tab_{tab}"):
                _tab(gr, runners[tab], tab, is_img2img)
    patch_template_response(gr)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args()
    demo = build_demo()
    demo.queue(64)  # as webui.py does
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=args.port,
        prevent_thread_lock=True,
        allowed_paths=[str(ROOT)],
        show_api=False,
        quiet=True,
    )
    print(f"READY {url}", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
