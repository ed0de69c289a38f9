"""The sampling job: a dataset folder in, image/label pairs, a manifest, ``run_config.json`` and a preview out
(``generate``), resumable and reproducible; ``preview`` draws the grid and ``quality`` scores a sample folder."""
