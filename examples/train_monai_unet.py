"""Train a MONAI U-Net on real + AugPaint-generated pairs from a labelled folder (see docs/scale_out.md).

    pip install monai                 # or: pip install 'augpaint-fast[seg]'
    python examples/train_monai_unet.py --data DATA [--weights W] [--n-per-source 8] [--epochs 20]

The generated pairs are made on first use through the weights' engine and cached on disk, so the second epoch
(and the second run) only reads PNGs.
"""
import argparse

import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from augpaint_fast import AugPaintDataset


def train(data_dir, weights=None, n_per_source=8, epochs=20, steps=50, workers=2, cache_dir=None):
    data = AugPaintDataset(data_dir, weights, n_per_source, steps=steps, cache_dir=cache_dir)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, num_workers=workers)
    net = UNet(spatial_dims=2, in_channels=3, out_channels=data.num_classes, channels=(16, 32, 64), strides=(2, 2))
    loss_fn, opt = DiceCELoss(to_onehot_y=True, softmax=True), torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for image, label in loader:  # float32 [B, 3, S, S] in [-1, 1], int64 [B, S, S]
            loss = loss_fn(net(image), label[:, None])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(image)
        losses.append(total / len(data))
        print(f"epoch {epoch + 1}/{epochs}: Dice+CE loss {losses[-1]:.4f} over {len(data)} pairs")
    return net, losses


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset folder with images/ and labels/")
    ap.add_argument("--weights", default=None, help="weights folder (default: the shipped tiny weights)")
    ap.add_argument("--n-per-source", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps of the generated pairs")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    ap.add_argument("--cache-dir", default=None, help="where generated pairs are kept (default: ~/.cache)")
    a = ap.parse_args()
    train(a.data, a.weights, a.n_per_source, a.epochs, a.steps, a.workers, a.cache_dir)
