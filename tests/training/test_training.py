"""Training: resumable, reproducible, and saving loadable checkpoints with the latent statistics."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file

from augpaint_fast.models.checkpoint import load_weights_folder
from augpaint_fast.cli.main import main
from augpaint_fast.errors import AugPaintError
from augpaint_fast.data.phantom import make_phantom
from augpaint_fast.training import shared, train_autoencoder, train_ldm


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    make_phantom(root, n=4, seed=3, unlabelled=12, progress=False)
    return root


AE = dict(preset="tiny", steps=6, batch_size=4, checkpoint_every=3, reseed_every=2, progress=False)
LDM = dict(preset="tiny", steps=6, batch_size=4, checkpoint_every=3, progress=False)


def _interrupt_after(monkeypatch, calls):
    original = shared.Batches.next
    count = {"n": 0}

    def next_or_stop(self):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(shared.Batches, "next", next_or_stop)


@pytest.mark.slow
def test_autoencoder_and_ldm_train_save_and_load(data, tmp_path):
    ae = train_autoencoder(data, tmp_path / "w", **AE)
    assert ae.steps == 6 and ae.codes_used > 0 and ae.heldout_psnr > 5
    ldm = train_ldm(data, tmp_path / "w", **LDM)
    autoencoder, ae_cfg, unet, unet_cfg = load_weights_folder(tmp_path / "w")
    assert unet_cfg.latent_shift == pytest.approx(ldm.latent_shift) and len(unet_cfg.latent_scale) == 3
    assert not (tmp_path / "w" / "unet" / shared.STATE_FILE).exists()
    with torch.no_grad():
        h = autoencoder.encode(torch.zeros(1, 3, 64, 64))
    assert h.shape == (1, 3, 16, 16)


@pytest.mark.slow
def test_interrupted_ldm_training_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    train_autoencoder(data, tmp_path / "w", **AE)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "autoencoder").symlink_to(tmp_path / "w" / "autoencoder")
    train_ldm(data, tmp_path / "a", **LDM)

    with monkeypatch.context() as m:
        _interrupt_after(m, 4)
        with pytest.raises(KeyboardInterrupt):
            train_ldm(data, tmp_path / "b", **LDM)
    assert (tmp_path / "b" / "unet" / shared.STATE_FILE).exists()
    train_ldm(data, tmp_path / "b", **LDM)
    a = load_file(tmp_path / "a" / "unet" / "model.safetensors")
    b = load_file(tmp_path / "b" / "unet" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(data, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _interrupt_after(m, 4)
        with pytest.raises(KeyboardInterrupt):
            train_autoencoder(data, tmp_path / "w", **AE)
    with pytest.raises(AugPaintError, match="batch_size"):
        train_autoencoder(data, tmp_path / "w", **{**AE, "batch_size": 2})
    (tmp_path / "w" / "autoencoder" / shared.STATE_FILE).write_bytes(b"torn")
    with pytest.raises(AugPaintError, match="not a readable training state"):
        train_autoencoder(data, tmp_path / "w", **AE)


def test_ldm_needs_an_autoencoder(data, tmp_path):
    with pytest.raises(AugPaintError, match="autoencoder"):
        train_ldm(data, tmp_path / "empty", **LDM)


def test_ema_warms_up_and_lr_schedule_shape():
    model = torch.nn.Linear(2, 2, bias=False)
    ema = shared.EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # decay min(0.999, 2/11): the average moves most of the way at once
    moved = (ema.shadow["weight"] - (model.weight - 1.0)).mean().item()
    assert moved == pytest.approx(1 - 2 / 11, rel=1e-5)
    assert shared.lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert shared.lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert shared.lr_at(100, 100, 1.0, 10) == pytest.approx(0.1)



@pytest.mark.slow
def test_conditional_ldm_trains_beside_the_unconditional_one(data, tmp_path):
    """--conditional writes unet-cond/ (cond_channels = embed_dim) next to unet/, each loadable by its variant,
    and the conditional U-Net's output depends on its condition."""
    train_autoencoder(data, tmp_path / "w", **AE)
    train_ldm(data, tmp_path / "w", **LDM)
    train_ldm(data, tmp_path / "w", conditional=True, flip_augment=True, **LDM)
    _, ae_cfg, unet, unet_cfg = load_weights_folder(tmp_path / "w", variant="cond")
    assert unet_cfg.cond_channels == ae_cfg.embed_dim == 3
    assert load_weights_folder(tmp_path / "w")[3].cond_channels == 0
    z, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 900])
    with torch.no_grad():
        a, b = unet(z, t, torch.zeros(2, 3, 16, 16)), unet(z, t, torch.ones(2, 3, 16, 16))
    assert not torch.equal(a, b)
    with pytest.raises(AugPaintError, match="no unet-cond"):
        load_weights_folder(_only_uncond(tmp_path), variant="cond")


def _only_uncond(tmp_path):
    import shutil

    folder = tmp_path / "only"
    shutil.copytree(tmp_path / "w", folder)
    shutil.rmtree(folder / "unet-cond")
    return folder


def test_training_masks_are_reproducible_boxes():
    from augpaint_fast.core.conditional import MASK_VERSIONS, training_masks

    a, b = training_masks(5, 32, seed=1), training_masks(7, 32, seed=1)
    assert a.shape == (5, MASK_VERSIONS, 1, 32, 32) and torch.equal(a, b[:5])  # independent of the count
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    coverage = training_masks(200, 32, seed=2).mean(dim=(2, 3, 4))
    assert 0.05 < coverage.mean() < 0.7  # 1-3 boxes of 10-60 % sides
    assert 0.03 < (coverage == 0).float().mean() < 0.2  # about one empty (unconditional) mask in ten


SMALL = dict(preset="tiny", steps=2, batch_size=2, checkpoint_every=1, progress=False)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_finished_model_is_reported_refused_or_replaced_with_force(data, tmp_path, capsys):
    w = tmp_path / "w"
    first = train_autoencoder(data, w, **SMALL)
    ldm = train_ldm(data, w, **SMALL)
    before = _files(w)
    again = train_autoencoder(data, w, **SMALL)  # the same settings: reported, nothing retrained
    assert again.already_done and again.codes_used == first.codes_used
    assert again.heldout_psnr == pytest.approx(first.heldout_psnr, abs=0.01)
    ldm_again = train_ldm(data, w, **SMALL)
    assert ldm_again.already_done and ldm_again.latent_shift == pytest.approx(ldm.latent_shift)
    with pytest.raises(AugPaintError, match=r"\(steps\); give --force"):  # more steps: no state to continue from
        train_autoencoder(data, w, **{**SMALL, "steps": 3})
    with pytest.raises(AugPaintError, match=r"\(lr\); give --force"):
        train_ldm(data, w, **{**SMALL, "lr": 2e-3})
    assert _files(w) == before

    argv = ["train-ae", "--data", str(data), "--weights", str(w), "--steps", "3", "--batch-size", "2"]
    assert main(argv + ["--force"]) == 0
    assert json.loads((w / "autoencoder" / "config.json").read_text())["training"]["steps"] == 3
    assert _files(w)["autoencoder/model.safetensors"] != before["autoencoder/model.safetensors"]
    capsys.readouterr()
    assert main(argv) == 0 and "already trained" in capsys.readouterr().out
    with pytest.raises(AugPaintError, match="trained before"):  # the U-Net learnt the old autoencoder's latents
        train_ldm(data, w, **SMALL)


@pytest.mark.slow
def test_every_file_training_writes_follows_the_umask(data, tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        train_autoencoder(data, tmp_path / "w", **SMALL)
        train_ldm(data, tmp_path / "w", **SMALL)
        train_ldm(data, tmp_path / "w", **SMALL, conditional=True)
        with monkeypatch.context() as m:  # leave a resumable state behind
            _interrupt_after(m, 2)
            with pytest.raises(KeyboardInterrupt):
                train_autoencoder(data, tmp_path / "cut", **{**SMALL, "steps": 3})
    finally:
        os.umask(old)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert tmp_path / "cut" / "autoencoder" / shared.STATE_FILE in files
    assert {p.name for p in files} == {"config.json", "model.safetensors", shared.STATE_FILE}
    assert {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in files} == \
        {p.relative_to(tmp_path).as_posix(): "0o644" for p in files}
    assert torch.load(tmp_path / "cut" / "autoencoder" / shared.STATE_FILE, weights_only=True)["step"] == 2


def test_a_state_without_what_a_resume_needs_is_refused(tmp_path):
    torch.save({"settings": {"preset": "tiny"}, "step": 3}, tmp_path / shared.STATE_FILE)
    with pytest.raises(AugPaintError, match="no model, opt, seconds"):
        shared.load_state(tmp_path, {"preset": "tiny"})
    torch.save([1, 2], tmp_path / shared.STATE_FILE)
    with pytest.raises(AugPaintError, match="no settings"):
        shared.load_state(tmp_path, {"preset": "tiny"})
