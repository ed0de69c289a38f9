"""Models from the ecosystems users already train in, turned into weights folders every engine samples with:
diffusers LDM pipelines (``import-weights --from diffusers``, converted) and MONAI generative networks
(``--from monai``, wrapped). nnU-Net v2 and MSD folders are read by ``data.nnunet``."""
