"""Stand-in for modules/sd_samplers_cfg_denoiser.py (v1.10.1): CFGDenoiser, the module every sampler calls as
model_wrap_cfg(x, sigma, cond=..., image_cond=..., uncond=..., cond_scale=..., s_min_uncond=...)."""

from __future__ import annotations

import torch
from modules import prompt_parser, sd_samplers_common, shared
from modules.script_callbacks import (
    AfterCFGCallbackParams,
    CFGDenoisedParams,
    CFGDenoiserParams,
    cfg_after_cfg_callback,
    cfg_denoised_callback,
    cfg_denoiser_callback,
)
from modules.shared import opts, state


def catenate_conds(conds):
    """modules/sd_samplers_cfg_denoiser.py:catenate_conds"""
    if not isinstance(conds[0], dict):
        return torch.cat(conds)
    return {key: torch.cat([x[key] for x in conds]) for key in conds[0]}


def subscript_cond(cond, a, b):
    """modules/sd_samplers_cfg_denoiser.py:subscript_cond"""
    if not isinstance(cond, dict):
        return cond[a:b]
    return {key: vec[a:b] for key, vec in cond.items()}


def pad_cond(tensor, repeats, empty):
    """modules/sd_samplers_cfg_denoiser.py:pad_cond -- append `repeats` copies of the empty-prompt cond."""
    if not isinstance(tensor, dict):
        return torch.cat([tensor, empty.repeat((tensor.shape[0], repeats, 1))], axis=1)
    tensor["crossattn"] = pad_cond(tensor["crossattn"], repeats, empty)
    return tensor


class CFGDenoiser(torch.nn.Module):
    """modules/sd_samplers_cfg_denoiser.py:CFGDenoiser"""

    def __init__(self, sampler) -> None:
        super().__init__()
        self.model_wrap = None
        self.mask = None
        self.nmask = None
        self.init_latent = None
        self.steps = None
        self.total_steps = None
        self.step = 0  # model calls in this sampling run (reset by Sampler.initialize)
        self.image_cfg_scale = None
        self.padded_cond_uncond = False
        self.padded_cond_uncond_v0 = False
        self.sampler = sampler
        self.p = None
        self.cond_scale_miltiplier = 1.0
        self.need_last_noise_uncond = False
        self.last_noise_uncond = None
        self.mask_before_denoising = False

    @property
    def inner_model(self):
        raise NotImplementedError()

    def combine_denoised(self, x_out, conds_list, uncond, cond_scale):
        """modules/sd_samplers_cfg_denoiser.py:CFGDenoiser.combine_denoised -- uncond + sum w*scale*(cond-uncond)."""
        denoised_uncond = x_out[-uncond.shape[0] :]
        denoised = torch.clone(denoised_uncond)
        for i, conds in enumerate(conds_list):
            for cond_index, weight in conds:
                denoised[i] += (x_out[cond_index] - denoised_uncond[i]) * (weight * cond_scale)
        return denoised

    def combine_denoised_for_edit_model(self, x_out, cond_scale):
        out_cond, out_img_cond, out_uncond = x_out.chunk(3)
        return out_uncond + cond_scale * (out_cond - out_img_cond) + self.image_cfg_scale * (out_img_cond - out_uncond)

    def get_pred_x0(self, x_in, x_out, sigma):
        return x_out

    def update_inner_model(self) -> None:
        """modules/sd_samplers_cfg_denoiser.py:CFGDenoiser.update_inner_model -- rebuilt on next access."""
        self.model_wrap = None
        c, uc = self.p.get_conds()
        self.sampler.sampler_extra_args["cond"] = c
        self.sampler.sampler_extra_args["uncond"] = uc

    def pad_cond_uncond(self, cond, uncond):
        """modules/sd_samplers_cfg_denoiser.py:CFGDenoiser.pad_cond_uncond (opts.pad_cond_uncond)"""
        empty = shared.sd_model.cond_stage_model_empty_prompt
        num_repeats = (cond.shape[1] - uncond.shape[1]) // empty.shape[1]
        if num_repeats < 0:
            cond = pad_cond(cond, -num_repeats, empty)
            self.padded_cond_uncond = True
        elif num_repeats > 0:
            uncond = pad_cond(uncond, num_repeats, empty)
            self.padded_cond_uncond = True
        return cond, uncond

    def pad_cond_uncond_v0(self, cond, uncond):
        """modules/sd_samplers_cfg_denoiser.py:CFGDenoiser.pad_cond_uncond_v0 -- uncond padded with its last
        column or truncated to cond's length."""
        is_dict = isinstance(uncond, dict)
        vec = uncond["crossattn"] if is_dict else uncond
        if vec.shape[1] < cond.shape[1]:
            vec = torch.hstack([vec, vec[:, -1:].repeat([1, cond.shape[1] - vec.shape[1], 1])])
            self.padded_cond_uncond_v0 = True
        elif vec.shape[1] > cond.shape[1]:
            vec = vec[:, : cond.shape[1]]
            self.padded_cond_uncond_v0 = True
        if is_dict:
            uncond["crossattn"] = vec
        else:
            uncond = vec
        return cond, uncond

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        """modules/sd_samplers_cfg_denoiser.py:CFGDenoiser.forward -- statement order as in v1.10.1."""
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException
        if sd_samplers_common.apply_refiner(self, sigma):
            cond = self.sampler.sampler_extra_args["cond"]
            uncond = self.sampler.sampler_extra_args["uncond"]
        is_edit_model = (
            shared.sd_model.cond_stage_key == "edit"
            and self.image_cfg_scale is not None
            and self.image_cfg_scale != 1.0
        )
        conds_list, tensor = prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step)
        assert not is_edit_model or all(len(c) == 1 for c in conds_list), "AND is not supported for InstructPix2Pix"

        def apply_blend(current_latent):
            blended_latent = current_latent * self.nmask + self.init_latent * self.mask
            if self.p.scripts is not None:
                from modules import scripts

                mba = scripts.MaskBlendArgs(
                    current_latent, self.nmask, self.init_latent, self.mask, blended_latent, denoiser=self, sigma=sigma
                )
                self.p.scripts.on_mask_blend(self.p, mba)
                blended_latent = mba.blended_latent
            return blended_latent

        if self.mask_before_denoising and self.mask is not None:
            x = apply_blend(x)
        batch_size = len(conds_list)
        repeats = [len(conds_list[i]) for i in range(batch_size)]
        image_uncond = image_cond
        if isinstance(uncond, dict):

            def make_condition_dict(c_crossattn, c_concat):
                return {**c_crossattn, "c_concat": [c_concat]}
        else:

            def make_condition_dict(c_crossattn, c_concat):
                return {"c_crossattn": [c_crossattn], "c_concat": [c_concat]}

        # x_in: cond rows (image-major, sub-prompt-minor), then one uncond row per image -- NEW tensors
        def rows(t):
            return [torch.stack([t[i] for _ in range(n)]) for i, n in enumerate(repeats)]

        extra = 2 if is_edit_model else 1
        x_in = torch.cat(rows(x) + [x] * extra)
        sigma_in = torch.cat(rows(sigma) + [sigma] * extra)
        image_cond_in = torch.cat(
            rows(image_cond) + [image_uncond] + ([torch.zeros_like(self.init_latent)] if is_edit_model else [])
        )

        denoiser_params = CFGDenoiserParams(
            x_in, image_cond_in, sigma_in, state.sampling_step, state.sampling_steps, tensor, uncond, self
        )
        cfg_denoiser_callback(denoiser_params)
        x_in = denoiser_params.x
        image_cond_in = denoiser_params.image_cond
        sigma_in = denoiser_params.sigma
        tensor = denoiser_params.text_cond
        uncond = denoiser_params.text_uncond
        skip_uncond = False
        if shared.opts.skip_early_cond != 0.0 and self.step / self.total_steps <= shared.opts.skip_early_cond:
            skip_uncond = True
            self.p.extra_generation_params["Skip Early CFG"] = shared.opts.skip_early_cond
        elif (
            (self.step % 2 or shared.opts.s_min_uncond_all)
            and s_min_uncond > 0
            and sigma[0] < s_min_uncond
            and not is_edit_model
        ):
            skip_uncond = True
            self.p.extra_generation_params["NGMS"] = s_min_uncond
            if shared.opts.s_min_uncond_all:
                self.p.extra_generation_params["NGMS all steps"] = shared.opts.s_min_uncond_all
        if skip_uncond:
            x_in = x_in[:-batch_size]
            sigma_in = sigma_in[:-batch_size]

        self.padded_cond_uncond = False
        self.padded_cond_uncond_v0 = False
        if shared.opts.pad_cond_uncond_v0 and tensor.shape[1] != uncond.shape[1]:
            tensor, uncond = self.pad_cond_uncond_v0(tensor, uncond)
        elif shared.opts.pad_cond_uncond and tensor.shape[1] != uncond.shape[1]:
            tensor, uncond = self.pad_cond_uncond(tensor, uncond)

        if tensor.shape[1] == uncond.shape[1] or skip_uncond:
            if is_edit_model:
                cond_in = catenate_conds([tensor, uncond, uncond])
            elif skip_uncond:
                cond_in = tensor
            else:
                cond_in = catenate_conds([tensor, uncond])
            if shared.opts.batch_cond_uncond:
                x_out = self.inner_model(x_in, sigma_in, cond=make_condition_dict(cond_in, image_cond_in))
            else:  # chunks of batch_size rows of x_in, whatever they contain
                x_out = torch.zeros_like(x_in)
                for a in range(0, x_out.shape[0], batch_size):
                    b = a + batch_size
                    x_out[a:b] = self.inner_model(
                        x_in[a:b],
                        sigma_in[a:b],
                        cond=make_condition_dict(subscript_cond(cond_in, a, b), image_cond_in[a:b]),
                    )
        else:  # different token counts: cond rows in chunks, then the uncond rows on their own
            x_out = torch.zeros_like(x_in)
            chunk = batch_size * 2 if shared.opts.batch_cond_uncond else batch_size
            for a in range(0, tensor.shape[0], chunk):
                b = min(a + chunk, tensor.shape[0])
                c_crossattn = subscript_cond(tensor, a, b) if not is_edit_model else torch.cat([tensor[a:b]], uncond)
                x_out[a:b] = self.inner_model(
                    x_in[a:b], sigma_in[a:b], cond=make_condition_dict(c_crossattn, image_cond_in[a:b])
                )
            if not skip_uncond:
                n = uncond.shape[0]
                x_out[-n:] = self.inner_model(
                    x_in[-n:], sigma_in[-n:], cond=make_condition_dict(uncond, image_cond_in[-n:])
                )

        denoised_image_indexes = [x[0][0] for x in conds_list]
        if skip_uncond:  # the cond output of each image's main row stands in for the skipped uncond
            x_out = torch.cat([x_out, torch.cat([x_out[i : i + 1] for i in denoised_image_indexes])])
        cfg_denoised_callback(CFGDenoisedParams(x_out, state.sampling_step, state.sampling_steps, self.inner_model))
        if self.need_last_noise_uncond:
            self.last_noise_uncond = torch.clone(x_out[-uncond.shape[0] :])
        if is_edit_model:
            denoised = self.combine_denoised_for_edit_model(x_out, cond_scale * self.cond_scale_miltiplier)
        elif skip_uncond:
            denoised = self.combine_denoised(x_out, conds_list, uncond, 1.0)
        else:
            denoised = self.combine_denoised(x_out, conds_list, uncond, cond_scale * self.cond_scale_miltiplier)
        if not self.mask_before_denoising and self.mask is not None:
            denoised = apply_blend(denoised)

        main_x_in = torch.cat([x_in[i : i + 1] for i in denoised_image_indexes])
        self.sampler.last_latent = self.get_pred_x0(
            main_x_in, torch.cat([x_out[i : i + 1] for i in denoised_image_indexes]), sigma
        )
        if opts.live_preview_content == "Prompt":
            preview = self.sampler.last_latent
        elif opts.live_preview_content == "Negative prompt":
            preview = self.get_pred_x0(x_in[-uncond.shape[0] :], x_out[-uncond.shape[0] :], sigma)
        else:
            preview = self.get_pred_x0(
                main_x_in, torch.cat([denoised[i : i + 1] for i in denoised_image_indexes]), sigma
            )
        sd_samplers_common.store_latent(preview)
        after = AfterCFGCallbackParams(denoised, state.sampling_step, state.sampling_steps)
        cfg_after_cfg_callback(after)
        denoised = after.x
        self.step += 1
        return denoised
