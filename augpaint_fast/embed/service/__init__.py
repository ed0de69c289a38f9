"""The HTTP service: ``augpaint-fast serve`` (FastAPI + uvicorn; ``pip install 'augpaint-fast[serve]'``).

``app.create_app(aug, limits)`` builds the ASGI app over a loaded :class:`~augpaint_fast.embed.api.AugPaint`;
``command`` is the CLI subcommand that loads the weights and runs it under uvicorn.
"""
