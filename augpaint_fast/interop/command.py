"""``augpaint-fast import-weights``: a local diffusers or MONAI model -> a weights folder every engine samples with.

The weights folder is the project's own (``checkpoint.py``); each model's ``config.json`` carries an
``"imported"`` record: where it came from, which path was taken (``"converted"``: the tensors were mapped onto
the project's model one for one; ``"wrapped"``: the foreign networks run as themselves behind the engine
interfaces, ``models.foreign``) and the scheduler settings read. ``augpaint-fast info --weights W`` prints it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..models.checkpoint import CONFIG_FILE, save_model
from ..checks import output_folder
from ..errors import AugPaintError
from ..models import UNet, VQAutoencoder
from .convert import Unmappable, apply_rules

SOURCES = ("diffusers", "monai")


def _convert(build, cfg, state: dict[str, torch.Tensor], rules, what: str) -> torch.nn.Module:
    with torch.device("meta"):
        model = build(cfg)
    try:
        converted = apply_rules(state, rules, model.state_dict())
    except Unmappable as exc:
        raise AugPaintError(f"{what} does not map onto the project's model: {exc}") from None
    model.load_state_dict(converted, assign=True)
    return model.eval()


def import_diffusers(folder: Path, out: Path) -> dict[str, Any]:
    """Convert the LDMPipeline in ``folder`` into the weights folder ``out`` -> the ``imported`` record."""
    from .diffusers_import import check_scheduler, read_pipeline, unet_config, unet_rules, vq_config, vq_rules

    output_folder("--out", out)
    d_unet, d_vq, sched = read_pipeline(folder)
    record = {"from": "diffusers", "source": str(Path(folder).resolve()), "path": "converted",
              "scheduler": check_scheduler(sched)}
    try:
        ucfg = unet_config(dict(d_unet.config), float(d_vq.config.get("scaling_factor", 1.0)))
        acfg = vq_config(dict(d_vq.config), ucfg.latent_size)
    except Unmappable as exc:
        raise AugPaintError(f"{folder}: the model does not map onto the project's architecture: {exc}") from None
    unet = _convert(UNet, ucfg, d_unet.state_dict(), unet_rules(ucfg), f"{folder / 'unet'}")
    autoencoder = _convert(VQAutoencoder, acfg, d_vq.state_dict(), vq_rules(acfg), f"{folder / 'vqvae'}")
    record["tensors"] = {"unet": len(d_unet.state_dict()), "vqvae": len(d_vq.state_dict()), "unconverted": 0}
    save_model(autoencoder, Path(out) / "autoencoder", "autoencoder", extra={"imported": record})
    save_model(unet, Path(out) / "unet", "unet", extra={"imported": record})
    return record


def import_weights(source: str, folder: Path, out: Path) -> dict[str, Any]:
    """``import-weights --from source``: the ``imported`` record of the weights folder written to ``out``."""
    if source == "monai":
        from .monai_import import import_monai

        return import_monai(folder, out)
    if source == "diffusers":
        return import_diffusers(folder, out)
    raise AugPaintError(f"import source must be one of {', '.join(SOURCES)}, got {source!r}")


def describe_import(weights: Path) -> str:
    """One line for ``info --weights``: how the folder's U-Net was made (imported, and which path, or trained)."""
    path = Path(weights) / "unet" / CONFIG_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AugPaintError(f"{path} is not readable JSON: {' '.join(str(exc).split())}") from None
    rec = meta.get("imported") if isinstance(meta, dict) else None
    if not rec:
        return f"weights {weights}: trained by augpaint-fast (not imported)"
    s = rec.get("scheduler", {})
    how = (f"{' + '.join(rec['networks'].values())} run as themselves" if rec["path"] == "wrapped" else
           f"{rec.get('tensors', {}).get('unconverted', '?')} unconverted tensors")
    return (f"weights {weights}: imported from {rec['from']} {rec['source']}, path: {rec['path']} ({how}); scheduler "
            f"{s.get('beta_schedule')} {s.get('beta_start')}..{s.get('beta_end')}, {s.get('prediction_type')}, "
            f"timestep spacing {s.get('timestep_spacing')}")
