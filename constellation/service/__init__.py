"""Run data service: a read-only HTTP server over a directory of run files, and its catalog.

``constellation-h5 serve DIR`` runs :func:`constellation.service.app.create_app` under uvicorn;
:class:`constellation.service.catalog.RunCatalog` keeps the SQLite run catalog. See
docs/data-service.md.
"""
