"""Interoperability with the ecosystems users' models and data live in: diffusers and MONAI models in
(``import-weights``), nnU-Net v2 raw datasets and MSD task folders in (``--data``)."""
