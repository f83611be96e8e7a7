"""Storage layer: atomic artefacts and posteriors (:mod:`~ltae.store.artifacts`), the run-folder
lock (:mod:`~ltae.store.lock`), the loader of saved runs (:mod:`~ltae.store.runs`) and the DuckDB
results store (:mod:`~ltae.store.results`)."""
