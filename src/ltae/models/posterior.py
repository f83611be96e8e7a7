"""A fitted model's posterior and the quantities derived from it, computed once per posterior
(shared by the one-market and the multi-market short-term models)."""

from __future__ import annotations

from ltae.models import sampling


class FittedPosterior:
    """Holds ``idata`` (an ArviZ DataTree, None before fitting); setting it clears the derived
    quantities that :meth:`_memo` keeps. A subclass sets ``self.idata = None`` in its constructor."""

    @property
    def idata(self):
        """The posterior (an ArviZ DataTree), or None before fitting; setting it clears the quantities
        derived from the previous posterior."""
        return self._idata

    @idata.setter
    def idata(self, value):
        self._idata = value
        self._cache: dict = {}

    def _require_fit(self):
        if self._idata is None:
            raise RuntimeError("fit the model first")

    def _memo(self, key, fn):
        """``fn()`` computed once per posterior (the pipeline asks for posterior quantities often);
        callers must not modify the returned arrays."""
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _sample(self, draws, tune, chains, target_accept, cores, sampler, seed, progressbar, **kw) -> None:
        """Build the model if needed, sample it (:func:`ltae.models.sampling.sample`) and keep the
        posterior in :attr:`idata` and the settings and timings in ``fit_info``."""
        if self.model is None:
            self.build_model()
        settings = sampling.SamplerSettings(
            sampler=sampler or sampling.DEFAULT_SAMPLER, draws=draws, tune=tune, chains=chains,
            target_accept=target_accept, cores=cores, seed=seed, progressbar=progressbar, **kw)
        res = sampling.sample(self.model, settings)
        self.idata = res.idata
        self.fit_info = {"sampler": res.sampler, "draws": draws, "tune": tune, "chains": chains,
                         "seed": seed, "target_accept": target_accept, **res.timings}
