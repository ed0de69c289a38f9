"""Segmentation on MONAI: the U-Net trained on real and generated pairs, its evaluation (Dice, HD95), the
confidence filter for generated pairs (paper §3.3) and the "Rand Aug" baseline generator.

MONAI is an optional dependency (``pip install 'augpaint-fast[seg]'``), imported only when a segmentation
function runs (:func:`augpaint_fast.segmentation.monai_dep.require_monai`), so the core install stays lean.

Modules: ``model`` (network config, run folders), ``augment`` (MONAI transforms), ``train`` (``train-seg``), ``metrics`` and ``evaluate`` (``evaluate``),
``filtering`` (``filter``), ``rand_aug`` (``rand-aug``), ``commands`` (CLI registration). Real and generated folders are read by :mod:`augpaint_fast.data.pairs`.
"""
