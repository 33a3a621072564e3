"""Part of the modules/processing.py stand-in (v1.10.1): process_images_inner, the per-batch loop with the exact
v1.10.1 hook order (see docs §1.4)."""

from __future__ import annotations

import numpy as np
import torch
from modules import devices, extra_networks, images, lowvram, processing, rng, scripts, sd_models, sd_unet, shared
from modules.sd_hijack import model_hijack
from modules.shared import cmd_opts, opts, state
from PIL import Image


def process_images_inner(p) -> processing.Processed:
    """modules/processing.py:process_images_inner"""
    if isinstance(p.prompt, list):
        assert len(p.prompt) > 0
    else:
        assert p.prompt is not None
    seed = processing.get_fixed_seed(p.seed)
    subseed = processing.get_fixed_seed(p.subseed)
    if p.restore_faces is None:
        p.restore_faces = opts.face_restoration
    if p.tiling is None:
        p.tiling = opts.tiling
    if p.refiner_checkpoint not in (None, "", "None", "none"):
        p.refiner_checkpoint_info = sd_models.get_closet_checkpoint_match(p.refiner_checkpoint)
        if p.refiner_checkpoint_info is None:
            raise Exception(f"Could not find checkpoint with name {p.refiner_checkpoint}")
    p.sd_model_name = shared.sd_model.sd_checkpoint_info.name_for_extra
    p.sd_model_hash = shared.sd_model.sd_model_hash
    p.sd_vae_name = None  # sd_vae.get_loaded_vae_name(): no separate VAE file
    p.sd_vae_hash = None
    model_hijack.apply_circular(p.tiling)
    model_hijack.clear_comments()
    p.fill_fields_from_opts()
    p.setup_prompts()
    if isinstance(seed, list):
        p.all_seeds = seed
    else:
        p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
    if isinstance(subseed, list):
        p.all_subseeds = subseed
    else:
        p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]
    if p.scripts is not None:
        p.scripts.process(p)

    infotexts: list[str] = []
    output_images: list = []
    p.stub_latents = []
    with torch.no_grad(), p.sd_model.ema_scope():
        with devices.autocast():
            p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
            sd_unet.apply_unet()
        if state.job_count == -1:
            state.job_count = p.n_iter
        for n in range(p.n_iter):
            p.iteration = n
            if state.skipped:
                state.skipped = False
            if state.interrupted or state.stopping_generation:
                break
            sd_models.reload_model_weights()  # "model can be changed for example by refiner"
            p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
            p.seeds = p.all_seeds[n * p.batch_size:(n + 1) * p.batch_size]
            p.subseeds = p.all_subseeds[n * p.batch_size:(n + 1) * p.batch_size]
            latent_channels = getattr(shared.sd_model, "latent_channels", processing.opt_C)
            p.rng = rng.ImageRNG((latent_channels, p.height // processing.opt_f, p.width // processing.opt_f),
                                 p.seeds, subseeds=p.subseeds, subseed_strength=p.subseed_strength,
                                 seed_resize_from_h=p.seed_resize_from_h, seed_resize_from_w=p.seed_resize_from_w)
            if p.scripts is not None:
                p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds,
                                               subseeds=p.subseeds)
            if len(p.prompts) == 0:
                break
            p.parse_extra_network_prompts()
            if not p.disable_extra_networks:
                with devices.autocast():
                    extra_networks.activate(p, p.extra_network_data)
            if p.scripts is not None:
                p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
            p.setup_conds()
            p.extra_generation_params.update(model_hijack.extra_generation_params)
            if n == 0 and not cmd_opts.no_prompt_history:  # params.txt (kept in memory here)
                processing.last_params_txt = processing.Processed(p, []).infotext(p, 0)
            for comment in model_hijack.comments:
                p.comment(comment)
            if p.n_iter > 1:
                shared.state.job = f"Batch {n + 1} out of {p.n_iter}"
            sd_models.apply_alpha_schedule_override(p.sd_model, p)
            p.stub_final_latents = None
            with devices.without_autocast() if devices.unet_needs_upcast else devices.autocast():
                samples_ddim = p.sample(conditioning=p.c, unconditional_conditioning=p.uc, seeds=p.seeds,
                                        subseeds=p.subseeds, subseed_strength=p.subseed_strength, prompts=p.prompts)
            if p.scripts is not None:
                ps = scripts.PostSampleArgs(samples_ddim)
                p.scripts.post_sample(p, ps)
                samples_ddim = ps.samples
            if getattr(samples_ddim, "already_decoded", False):
                x_samples_ddim = samples_ddim
                p.stub_latents.append(p.stub_final_latents)
            else:
                devices.test_for_nans(samples_ddim, "unet")
                p.stub_latents.append(samples_ddim.detach().clone())
                x_samples_ddim = processing.decode_latent_batch(p.sd_model, samples_ddim, target_device=devices.cpu,
                                                                check_for_nans=True)
            x_samples_ddim = torch.stack(x_samples_ddim).float()
            x_samples_ddim = torch.clamp((x_samples_ddim + 1.0) / 2.0, min=0.0, max=1.0)
            del samples_ddim
            if lowvram.is_enabled(shared.sd_model):
                lowvram.send_everything_to_cpu()
            state.nextjob()
            if p.scripts is not None:
                p.scripts.postprocess_batch(p, x_samples_ddim, batch_number=n)
                p.prompts = p.all_prompts[n * p.batch_size:(n + 1) * p.batch_size]
                p.negative_prompts = p.all_negative_prompts[n * p.batch_size:(n + 1) * p.batch_size]
                batch_params = scripts.PostprocessBatchListArgs(list(x_samples_ddim))
                p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
                x_samples_ddim = batch_params.images

            def infotext(index=0, use_main_prompt=False):
                return processing.create_infotext(p, p.prompts, p.seeds, p.subseeds, use_main_prompt=use_main_prompt,
                                                  index=index, all_negative_prompts=p.negative_prompts)

            for i, x_sample in enumerate(x_samples_ddim):
                p.batch_index = i
                image = Image.fromarray((255.0 * np.moveaxis(x_sample.cpu().numpy(), 0, 2)).astype(np.uint8))
                if p.scripts is not None:
                    pp = scripts.PostprocessImageArgs(image)
                    p.scripts.postprocess_image(p, pp)
                    image = pp.image
                mask_for_overlay = getattr(p, "mask_for_overlay", None)
                overlay_image = None
                if opts.overlay_inpaint and getattr(p, "overlay_images", None) is not None \
                        and i < len(p.overlay_images):
                    overlay_image = p.overlay_images[i]
                if p.scripts is not None:
                    ppmo = scripts.PostProcessMaskOverlayArgs(i, mask_for_overlay, overlay_image)
                    p.scripts.postprocess_maskoverlay(p, ppmo)
                if p.scripts is not None:  # apply_overlay is a no-op without an overlay image
                    pp = scripts.PostprocessImageArgs(image)
                    p.scripts.postprocess_image_after_composite(p, pp)
                    image = pp.image
                text = infotext(i)
                infotexts.append(text)
                if opts.enable_pnginfo:
                    image.info["parameters"] = text
                output_images.append(image)
            del x_samples_ddim
        if not infotexts:
            infotexts.append(processing.Processed(p, []).infotext(p, 0))
        p.color_corrections = None
        index_of_first_image = 0
        unwanted_grid_because_of_img_count = len(output_images) < 2 and opts.grid_only_if_multiple
        if (opts.return_grid or opts.grid_save) and not p.do_not_save_grid and not unwanted_grid_because_of_img_count:
            grid = images.image_grid(output_images, p.batch_size)
            if opts.return_grid:
                text = infotext(use_main_prompt=True)
                infotexts.insert(0, text)
                if opts.enable_pnginfo:
                    grid.info["parameters"] = text
                output_images.insert(0, grid)
                index_of_first_image = 1
    if not p.disable_extra_networks and p.extra_network_data:
        extra_networks.deactivate(p, p.extra_network_data)
    res = processing.Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0],
                               subseed=p.all_subseeds[0], index_of_first_image=index_of_first_image,
                               infotexts=infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res
