"""The eager baseline computes Algorithm 1: with the counter-based noise it matches the sampler's reference."""
import torch

from augpaint_fast.core import rng
from augpaint_fast.bench.eager import eager_generate, eager_sample
from augpaint_fast.bench.runner import perturbed
from augpaint_fast.models.config import get_preset
from augpaint_fast.models import UNet, VQAutoencoder
from augpaint_fast.ops.noise import philox_noise
from augpaint_fast.core.sampler import augpaint_sample
from augpaint_fast.core.schedule import ddim_schedule


def _models():
    torch.manual_seed(0)
    p = get_preset("tiny")
    return perturbed(VQAutoencoder(p.autoencoder), 0), perturbed(UNet(p.unet), 1)


def test_eager_loop_equals_the_reference_sampler():
    _, unet = _models()
    g = torch.Generator().manual_seed(2)
    z0 = torch.randn(2, 3, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) > 0.5).float()
    uids = torch.tensor([rng.sample_uid("e", k) for k in range(2)])
    s = ddim_schedule(10, 1.0)
    with torch.no_grad():
        want = augpaint_sample(lambda z, t: unet(z, t), z0, mask, uids, 4, s)
    got = eager_sample(unet, z0, mask, s, philox_noise(4, uids, (3, 16, 16)))
    # division vs multiplication by 1/sqrt(a), C++ vs reference normals, with |z| up to 140 (a random U-Net is
    # no noise predictor): measured 4.6e-5, 3.3e-7 of max |z|; bound 1e-6 of it.
    assert (got - want).abs().max() < 1e-6 * want.abs().max()


def test_eager_generate_encodes_samples_and_decodes():
    ae, unet = _models()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    mask = torch.ones(2, 1, 16, 16)  # all known: the output is the decoded clean latent
    s = ddim_schedule(3, 1.0)
    out = eager_generate(ae, unet, x, mask, s, philox_noise(0, torch.tensor([1, 2]), (3, 16, 16)))
    with torch.no_grad():
        assert torch.allclose(out, ae.decode(ae.encode(x)), atol=1e-5)
