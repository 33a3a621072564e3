"""Paste-back into the accordion (infotext_fields through apply_paste), which the real-host API tests cannot reach.

The API (named, positional, invalid values), the README's payloads and the X/Y/Z axes are tested in the real
hosts (tests/realhost/test_api.py, test_api_flows.py)."""

from __future__ import annotations

import pytest
from modules import infotext_utils

from ae_lib.params import FIELDS
from tests import webui_host as host
from tests.webui_host import ae, run_txt2img


@pytest.fixture(autouse=True)
def _host():
    host.start()


def test_paste_back_restores_the_accordion():
    params = ae("cat, frog#2", step_size=12.5, smoothing=False, thresholds="0:0.1, 0.3:0.6", max_refine=3)
    processed, _ = run_txt2img(params, prompt="a frog, a cat and a frog", steps=4)
    info = processed.infotexts[0]
    assert 'AE subjects: "cat, frog#2"' in info  # quoted because of the comma
    fields = host.script().infotext_fields
    pasted = infotext_utils.apply_paste(fields, info)
    expected = [getattr(params, f.name) for f in FIELDS if f.name == "enabled" or f.infotext]
    assert [pasted[c] for c, _ in fields] == expected

    plain_info = run_txt2img(None, steps=4)[0].infotexts[0]
    assert "AE " not in plain_info, "nothing is written when A&E is off"
    unchanged = infotext_utils.apply_paste(fields, plain_info)
    assert list(unchanged.values()) == [False], "pasting a plain image only turns A&E off"

