"""sample --variant cond: the conditional U-Net (paper §3.1) sees the masked image's latent and nothing is
re-imposed; it samples the same on the torch and onnx engines within their stated tolerance."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from augpaint_fast.job import generate
from augpaint_fast.core import masks
from augpaint_fast.models.checkpoint import load_weights_folder, save_model
from augpaint_fast.cli.main import main
from augpaint_fast.job.generate import SampleOptions, run_sampling
from augpaint_fast.models import UNet

FAST = dict(steps=4, n=2, batch_size=4)


@pytest.fixture(scope="module")
def cond_weights(tmp_path_factory, weights):
    """The shipped tiny weights plus a conditional U-Net (random, perturbed so it depends on its condition)."""
    folder = tmp_path_factory.mktemp("cond") / "w"
    shutil.copytree(weights, folder)
    _, ae_cfg, _, unet_cfg = load_weights_folder(folder)
    torch.manual_seed(0)
    unet = UNet(dataclasses.replace(unet_cfg, cond_channels=ae_cfg.embed_dim)).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.02 * torch.randn_like(p))
    save_model(unet, folder / "unet-cond", "unet")
    return folder


@pytest.mark.slow
def test_cond_conditions_on_the_masked_image_and_reimposes_nothing(phantom_data, cond_weights, tmp_path,
                                                                    monkeypatch):
    seen = []
    original = generate.sample

    def spy(engine, z0, mask, uids, seed, schedule, *, cond=None, callback=None):
        seen.append((z0, mask, cond))
        return original(engine, z0, mask, uids, seed, schedule, cond=cond, callback=callback)

    monkeypatch.setattr(generate, "sample", spy)
    job = generate.Job(phantom_data, cond_weights, tmp_path / "out", SampleOptions(**FAST, variant="cond"),
                       progress=False)
    job.run()
    z0, mask, cond = seen[0]
    assert cond is not None and not mask.any()  # conditioned on, not merged
    src = job.sources[0]
    known = masks.known_mask(src.label, "box")
    with torch.no_grad():
        h = job.generator.autoencoder.encode(torch.from_numpy(src.image * known[None])[None])
    want = (h - job.generator.shift) / job.generator.scale
    torch.testing.assert_close(cond[0:1], want, rtol=0, atol=1e-5)
    config = json.loads((tmp_path / "out" / "run_config.json").read_text())
    assert config["variant"] == "cond"


@pytest.mark.slow
def test_cond_on_torch_and_onnx_agree(phantom_data, cond_weights, tmp_path):
    """fp32 ONNX Runtime vs eager PyTorch on the conditional path: decoded PNGs within 2 grey levels (the
    engines' stated tolerance for whole runs; measured here: max 1)."""
    pytest.importorskip("onnxruntime")
    run_sampling(phantom_data, cond_weights, tmp_path / "t", SampleOptions(**FAST, variant="cond"), progress=False)
    opts = SampleOptions(**FAST, variant="cond", engine="onnx", engine_options={"cache_dir": str(tmp_path / "c")})
    run_sampling(phantom_data, cond_weights, tmp_path / "o", opts, progress=False)
    names = sorted(p.name for p in (tmp_path / "t" / "images").glob("*.png"))
    assert len(names) == 6
    worst = 0
    for name in names:
        a, b = (np.asarray(Image.open(tmp_path / d / "images" / name)).astype(int) for d in ("t", "o"))
        worst = max(worst, int(np.abs(a - b).max()))
        assert (tmp_path / "t" / "labels" / name).read_bytes() == (tmp_path / "o" / "labels" / name).read_bytes()
    print(f"cond torch vs onnx: max {worst} grey levels")
    assert worst <= 2


def test_cond_without_a_conditional_unet_is_one_line(phantom_data, weights, tmp_path, capsys):
    assert main(["sample", "--data", str(phantom_data), "--weights", str(weights), "--out", str(tmp_path / "o"),
                 "--variant", "cond", "--steps", "2", "--n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("augpaint-fast: error:") and "unet-cond" in err and "--conditional" in err


def test_resuming_with_another_variant_or_cache_interval_is_refused(phantom_data, cond_weights, tmp_path):
    from augpaint_fast.errors import AugPaintError

    run_sampling(phantom_data, cond_weights, tmp_path / "o", SampleOptions(**FAST), progress=False)
    with pytest.raises(AugPaintError, match="variant"):
        run_sampling(phantom_data, cond_weights, tmp_path / "o", SampleOptions(**FAST, variant="cond"),
                     progress=False)
    with pytest.raises(AugPaintError, match="cache_interval"):
        run_sampling(phantom_data, cond_weights, tmp_path / "o",
                     SampleOptions(**FAST, engine_options={"cache_interval": 3}), progress=False)


def test_the_sampler_builds_its_condition_with_the_training_function(phantom_data, cond_weights, monkeypatch):
    """Training and sampling build the conditional U-Net's input with one function, so they cannot drift."""
    from augpaint_fast.core import conditional
    from augpaint_fast.data import Dataset
    from augpaint_fast.training import ldm

    assert ldm.masked_images is conditional.masked_images  # what training calls
    original, calls, encoded = conditional.masked_images, [], []

    def spy(images, known):
        calls.append((images, known))
        return original(images, known)

    monkeypatch.setattr(conditional, "masked_images", spy)
    gen = generate.Generator(cond_weights, SampleOptions(**FAST, variant="cond"))
    clean_latents = gen._clean_latents

    def record(items, images, cache=None):
        if cache is gen._cond:
            encoded.extend(images)
        return clean_latents(items, images, cache)

    monkeypatch.setattr(gen, "_clean_latents", record)
    src = generate.load_sources(Dataset.open(phantom_data), gen.size, False)[0]
    gen.generate([generate.work_item(src, k, 0, "none") for k in range(2)], seed=0)
    known = masks.known_mask(src.label, "box")
    assert len(calls) == 2 and len(encoded) == 2
    for (images, mask), sampled in zip(calls, encoded):
        np.testing.assert_array_equal(images.numpy(), src.image)
        np.testing.assert_array_equal(mask.numpy(), known[None])
        np.testing.assert_array_equal(sampled, original(images, mask).numpy())  # the sampler's input, exactly
