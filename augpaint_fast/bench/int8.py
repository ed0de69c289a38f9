"""The int8 exports a bench row needs, calibrated on the bench's own sampling runs and cached.

An ``openvino`` row with ``dtype="int8"`` reads the int8 U-Net graphs of its weights from the export cache
(``engines.openvino_engine``); the bench makes them first (``export.int8.quantize_unet_graphs``, the recipe of
``export --int8``): for the timed random-weight models, calibrated on their own sampling runs over the bench's
inputs; for the quality runs, on the trained weights' runs over phantom sources other than the scored ones
(``CALIBRATION_PHANTOM_SEED``). The calibration's fingerprint hashes the batch, the seed and the steps, so the
second bench run on the same weights finds them cached and records nothing.
"""
from __future__ import annotations

import hashlib
import torch

from ..core.schedule import ddim_schedule
from ..engines import create_engine
from ..engines.openvino_engine import export_dir
from ..export.int8 import Calibration, quantize_unet_graphs
from ..export.onnx_export import export_onnx
from ..export.specs import deep_cache_specs, export_specs
from ..job.calibrate import trajectory_feeds

CALIBRATION_PHANTOM_SEED = 7  # the quality runs score phantoms of quality_set.PHANTOM_SEED: calibrate on others


def batch_calibration(autoencoder, unet, x: torch.Tensor, mask: torch.Tensor, uids: torch.Tensor, seed: int,
                      steps: int, what: str) -> Calibration:
    """The U-Net inputs of one ``steps``-step sampling run of the batch ``x`` (images in [-1, 1], latent-size
    ``mask``, ``uids``) on the float32 torch engine; ``what`` names the data in the fingerprint."""
    digest = hashlib.sha256()
    for tensor in (x, mask, uids):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    fingerprint = dict(data=what, sha256=digest.hexdigest(), images=int(x.shape[0]), steps=steps, seed=seed)

    def record():
        engine = create_engine("torch", autoencoder, unet)
        cfg = unet.cfg
        shift = torch.tensor(cfg.latent_shift)[None, :, None, None]
        scale = torch.tensor(cfg.latent_scale)[None, :, None, None]
        with torch.no_grad():
            z0 = (engine.encode(x) - shift) / scale
        return trajectory_feeds(engine, z0, mask, uids, seed, ddim_schedule(steps, 1.0))

    return Calibration(fingerprint, record)


def prepare_int8(autoencoder, unet, options: dict, calibration: Calibration, log) -> None:
    """Make sure the export cache that an openvino engine of ``options`` reads holds the int8 graphs it runs
    (the U-Net, and with ``cache_interval`` > 1 the two graphs of feature caching); the trajectories are
    recorded only when one is missing."""
    exports = export_dir(options.get("cache_dir"))
    specs = export_specs(autoencoder, unet, (1,))
    if int(options.get("cache_interval", 1)) > 1:
        specs.update(deep_cache_specs(unet, (1,)))
    specs = {name: spec for name, spec in specs.items() if "unet" in name}
    onnx = {name: export_onnx(spec, exports) for name, spec in specs.items()}
    quantize_unet_graphs(specs, onnx, exports, calibration, log=log)
