"""int8 quantization (``export.int8``) as a process-level citizen: NNCF runs in a spawned child, so the caller
never loads it and can fork afterwards (a DataLoader's workers; a process that had run NNCF's quantization died
with a segmentation fault at its next fork). The int8 model's accuracy: tests/engines/test_openvino_int8.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("nncf")

SCRIPT = """
import sys, tempfile
from pathlib import Path
import numpy as np, torch
from augpaint_fast.export.int8 import quantize_onnx
from augpaint_fast.export.onnx_export import export_onnx
from augpaint_fast.export.specs import export_specs
from tests.engines._models import random_models

spec = export_specs(*random_models("tiny"))["unet"]
path = export_onnx(spec, Path(tempfile.mkdtemp()))
g = torch.Generator().manual_seed(0)
feeds = [{n: x.numpy() for n, x in zip(spec.input_names, spec.sample_inputs(2, generator=g))} for _ in range(2)]
model = quantize_onnx(path, feeds)
print("QuantizeLinear" in model.decode("latin-1"), "nncf" in sys.modules)
data = torch.utils.data.TensorDataset(torch.arange(32.0))
print(sum(len(b[0]) for b in torch.utils.data.DataLoader(data, batch_size=4, num_workers=2)))
"""


@pytest.mark.slow
def test_quantization_runs_outside_the_caller_which_can_fork_after_it():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]
    quantized, nncf_loaded, forked = run.stdout.split()[-3:]
    assert quantized == "True"  # the QDQ model came back from the child
    assert nncf_loaded == "False"  # the caller never imported NNCF
    assert forked == "32"  # fork-based DataLoader workers ran after the quantization
