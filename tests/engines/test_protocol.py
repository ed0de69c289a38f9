"""The engine protocol module: the padding rule of static engines, placement checks, the Engine protocol."""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.engines import Engine, LoopEngine, TorchEngine
from augpaint_fast.engines.protocol import check_on_device, pick_batch, run_padded


def test_pick_batch_and_run_padded():
    assert [pick_batch(n, (1, 4, 8)) for n in (1, 2, 4, 5, 8, 9)] == [1, 4, 4, 8, 8, 8]
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return x * 2

    x = torch.arange(11.0)[:, None]
    assert torch.equal(run_padded(fn, [x], (1, 4, 8)), x * 2)
    assert calls == [8, 4]  # 11 = one chunk of 8 + 3 rows padded to 4 (the last row repeated)
    eps, feature = run_padded(lambda x: (x * 2, x[:, :, None] + 1), [x], (1, 4, 8))  # several outputs
    assert torch.equal(eps, x * 2) and torch.equal(feature, x[:, :, None] + 1)


def test_check_on_device_names_the_tensor():
    check_on_device("x", torch.device("cpu"), a=torch.zeros(1), b=None)
    with pytest.raises(ValueError, match="got b on meta"):
        check_on_device("x", torch.device("cpu"), a=torch.zeros(1), b=torch.zeros(1, device="meta"))


def test_engines_satisfy_the_protocol():
    engine = TorchEngine(torch.nn.Identity(), torch.nn.Identity())
    assert isinstance(engine, Engine) and isinstance(engine, LoopEngine)
    assert not isinstance(object(), Engine)
