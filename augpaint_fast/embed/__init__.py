"""AugPaint inside other programs: the library API (``api``: ``from_pretrained``), its dynamic batcher
(``batcher``), a torch Dataset of real and generated pairs (``aug_dataset``), sampling sharded on Ray workers
(``ray_workers``) and the HTTP service (``service``)."""
