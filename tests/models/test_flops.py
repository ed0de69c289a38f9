"""FLOP and parameter counting against analytic counts and DESIGN.md §6's cost model."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from augpaint_fast.errors import AugPaintError
from augpaint_fast.models.flops import count_flops, describe_preset, param_count


def test_conv_flops_are_analytic():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(1, 3, 10, 12)
    assert count_flops(conv, x) == 2 * 3 * 8 * 3 * 3 * 10 * 12
    assert param_count(conv) == 8 * 3 * 3 * 3 + 8


def test_linear_flops_and_meta_inputs():
    linear = nn.Linear(5, 7)
    assert count_flops(linear, torch.randn(1, 5)) == 2 * 5 * 7
    with torch.device("meta"):
        meta_linear = nn.Linear(5, 7)
        x = torch.empty(4, 5)
    assert count_flops(meta_linear, x) == 4 * 2 * 5 * 7


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_flops_counted_on_every_device(device):
    b, heads, tokens, d = 1, 2, 16, 8
    q = torch.randn(b, heads, tokens, d, device=device)
    expected = 2 * (2 * b * heads * tokens * tokens * d)  # q @ k^T and weights @ v
    assert count_flops(F.scaled_dot_product_attention, q, q, q) == expected


def test_describe_tiny_preset():
    table = describe_preset("tiny").splitlines()
    assert table[0] == "preset tiny: 64x64 images, 16x16x3 latents, batch 1"
    assert [row.split()[0] for row in table[2:]] == ["encoder", "decoder", "U-Net"]
    unet_params, unet_gflop = (float(v) for v in table[4].split()[1:])
    assert 1.0 < unet_params < 2.5 and 0.1 < unet_gflop < 0.4
    with pytest.raises(AugPaintError, match="valid presets"):
        describe_preset("nope")


def test_paper_preset_matches_design_cost_model():
    rows = {row.split()[0]: [float(v) for v in row.split()[1:]] for row in describe_preset("paper").splitlines()[2:]}
    assert rows["U-Net"][0] == pytest.approx(274.0, rel=0.03)
    assert rows["U-Net"][1] == pytest.approx(202.0, rel=0.01)
    assert rows["encoder"][1] == pytest.approx(345.0, rel=0.01)
    assert rows["decoder"][1] == pytest.approx(671.0, rel=0.01)
