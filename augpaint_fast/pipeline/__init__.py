"""The whole AugPaint method as one resumable command: AE -> LDM -> sample -> filter -> train-seg -> evaluate,
over several splits of labelled cases, with the baselines of the paper's tables (``augpaint-fast pipeline``)."""
