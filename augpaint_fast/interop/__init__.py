"""Models from the ecosystems users already train in, converted into weights folders every engine samples
with: diffusers LDM pipelines (``import-weights --from diffusers``). nnU-Net v2 and MSD folders are read by
``data.nnunet``."""
