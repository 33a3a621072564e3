"""Stand-in for modules/extra_networks.py (v1.10.1): <name:args> tags are parsed and stripped; no network is
registered, so activate() only runs the after_extra_networks_activate script hook."""

from __future__ import annotations

import re
from collections import defaultdict

from modules import errors

extra_network_registry: dict = {}  # modules/extra_networks.py:extra_network_registry (empty here)


class ExtraNetworkParams:
    """modules/extra_networks.py:ExtraNetworkParams"""

    def __init__(self, items=None):
        self.items = items or []
        self.positional: list = []
        self.named: dict = {}
        for item in self.items:
            parts = item.split("=", 2) if isinstance(item, str) else [item]
            if len(parts) == 2:
                self.named[parts[0]] = parts[1]
            else:
                self.positional.append(item)

    def __eq__(self, other):
        return self.items == other.items

    __hash__ = None  # unhashable, as in v1.10.1 (it defines __eq__ only)


re_extra_net = re.compile(r"<(\w+):([^>]+)>")  # modules/extra_networks.py:re_extra_net


def parse_prompt(prompt: str):
    """modules/extra_networks.py:parse_prompt -- removes every <name:a:b> tag; returns (prompt, {name: [params]})."""
    res = defaultdict(list)

    def found(m):
        res[m.group(1)].append(ExtraNetworkParams(items=m.group(2).split(":")))
        return ""

    return re.sub(re_extra_net, found, prompt), res


def parse_prompts(prompts):
    """modules/extra_networks.py:parse_prompts -- extra-network data is taken from the FIRST prompt only."""
    res, extra_data = [], None
    for prompt in prompts:
        updated_prompt, parsed = parse_prompt(prompt)
        if extra_data is None:
            extra_data = parsed
        res.append(updated_prompt)
    return res, extra_data


def activate(p, extra_network_data) -> None:
    """modules/extra_networks.py:activate -- registered networks' activate (none here), then the
    after_extra_networks_activate hook with batch_number=p.iteration."""
    for name, network in extra_network_registry.items():
        try:
            network.activate(p, [])
        except Exception as e:
            errors.display(e, f"activating extra network {name}")
    if p.scripts is not None:
        p.scripts.after_extra_networks_activate(
            p,
            batch_number=p.iteration,
            prompts=p.prompts,
            seeds=p.seeds,
            subseeds=p.subseeds,
            extra_network_data=extra_network_data,
        )


def deactivate(p, extra_network_data) -> None:
    """modules/extra_networks.py:deactivate"""
    for name, network in extra_network_registry.items():
        try:
            network.deactivate(p)
        except Exception as e:
            errors.display(e, f"deactivating extra network {name}")
