"""API-format prompts for the tests: a checkpoint, the A&E node (or a plain CLIPTextEncode), samplers, outputs."""

from __future__ import annotations

from typing import Any

from ae_comfy.inputs import PARAM_FIELDS

CKPT = {"sd15": "ae-random-sd15-v8.safetensors", "sdxl": "ae-random-sdxl-v8.safetensors"}
PROMPT = "a cat and a frog"


class Graph:
    def __init__(self, family: str = "sd15") -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.ckpt = self.add("CheckpointLoaderSimple", ckpt_name=CKPT[family])

    def add(self, class_type: str, node_id: str | None = None, **inputs: Any) -> str:
        key = node_id or str(len(self.nodes) + 1)
        self.nodes[key] = {"class_type": class_type, "inputs": inputs}
        return key

    @staticmethod
    def out(node: str, slot: int = 0) -> list[Any]:
        return [node, slot]

    def attend_and_excite(self, text: str = PROMPT, subjects: str = "cat, frog", **params: Any) -> str:
        """The node with every parameter at its default (from the one parameter model) unless given."""
        values = {f.name: f.default for f in PARAM_FIELDS} | {"subjects": subjects} | params
        return self.add("AttendAndExcite", model=self.out(self.ckpt, 0), clip=self.out(self.ckpt, 1), text=text,
                        **values)

    def encode(self, text: str) -> str:
        return self.add("CLIPTextEncode", clip=self.out(self.ckpt, 1), text=text)

    def latent(self, size: int = 64, batch: int = 1) -> str:
        return self.add("EmptyLatentImage", width=size, height=size, batch_size=batch)

    def ksampler(self, model: list[Any], positive: list[Any], negative: list[Any], latent: list[Any], *,
                 seed: int = 1, steps: int = 4, cfg: float = 7.0, sampler: str = "euler", scheduler: str = "normal",
                 denoise: float = 1.0) -> str:
        return self.add("KSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                        seed=seed, steps=steps, cfg=cfg, sampler_name=sampler, scheduler=scheduler, denoise=denoise)

    def decode_save(self, samples: list[Any], prefix: str = "ae") -> str:
        image = self.add("VAEDecode", samples=samples, vae=self.out(self.ckpt, 2))
        return self.add("SaveImage", images=self.out(image), filename_prefix=prefix)


def ae_and_plain(family: str = "sd15", size: int = 64, steps: int = 4, seed: int = 1, with_plain: bool = True,
                 with_ae: bool = True, **params: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A prompt with an A&E branch and/or a plain branch (CLIPTextEncode + KSampler on the original MODEL)."""
    g = Graph(family)
    negative = g.encode("")
    latent = g.latent(size)
    saves: dict[str, str] = {}
    if with_ae:
        ae = g.attend_and_excite(**params)
        s = g.ksampler(g.out(ae, 0), g.out(ae, 1), g.out(negative), g.out(latent), seed=seed, steps=steps)
        saves["ae"] = g.decode_save(g.out(s), "ae")
    if with_plain:
        positive = g.encode(PROMPT)
        s = g.ksampler(g.out(g.ckpt, 0), g.out(positive), g.out(negative), g.out(latent), seed=seed, steps=steps)
        saves["plain"] = g.decode_save(g.out(s), "plain")
    return g.nodes, saves


def to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """A UI-format workflow (what the template browser loads) as an API prompt, the way the page queues it:
    linked inputs from `links`, widget values in the order of each node's inputs (a seed's
    control_after_generate value follows it)."""
    links = {lk[0]: (str(lk[1]), lk[2]) for lk in workflow["links"]}
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        info = object_info[node["type"]]["input"]
        linked = {i["name"]: list(links[i["link"]]) for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs: dict[str, Any] = {}
        for name, spec in [*info.get("required", {}).items(), *info.get("optional", {}).items()]:
            if name in linked:
                inputs[name] = linked[name]
                continue
            kind = spec[0]
            if isinstance(kind, str) and kind.isupper() and kind not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                continue  # an unconnected link input
            if values:
                inputs[name] = values.pop(0)
            options = spec[1] if len(spec) > 1 else {}
            if options.get("control_after_generate") and values:
                values.pop(0)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
