"""Model layer: the short-term MMM (:mod:`~ltae.models.mmm`), the long-term BVAR
(:mod:`~ltae.models.bvar`, :mod:`~ltae.models.bvar_collapsed`), media transforms, the sampler
switch (:mod:`~ltae.models.sampling`), the compile cache and posterior summaries
(:mod:`~ltae.models.diagnostics`)."""
