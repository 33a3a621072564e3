"""Reading `key: value` pairs from an infotext's parameter line, as the WebUI's parse_generation_parameters
does for simple values (quoted values may hold commas)."""

from __future__ import annotations

import json
import re

# modules/infotext_utils.py:re_param (v1.10.1)
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse(infotext: str) -> dict[str, str]:
    last = infotext.strip().splitlines()[-1] if infotext.strip() else ""
    out: dict[str, str] = {}
    for key, raw in RE_PARAM.findall(last):
        value = raw.strip()
        out[key.strip()] = json.loads(value) if value.startswith('"') and value.endswith('"') else value
    return out
