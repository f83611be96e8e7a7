"""The MLflow pyfunc of a registered ltae run (see :mod:`ltae.store.registry`).

``predict(plan)`` takes a weekly spend plan for the weeks after the run's data (a DataFrame: ``Date``
plus one column per channel; channels left out keep the recent average) and returns the incremental
response against the recent average spend, per channel and overall (``all``): extra spend,
short-term, long-term and total response (mean, lower, upper, in currency of sales), the return
per extra unit of spend and the probability that the total is positive. These are the numbers of
``ltae scenario`` and of the API's ``POST /predict_roi`` for the same plan (same run, same draws).
Params: ``recent_weeks`` (13) and ``draws`` (2000).

The run's files are the model's artifacts; ``load_context`` opens them with ``open_run`` (every
file's sha256 checked), nothing is unpickled. Imports mlflow: import this module lazily.
"""

from __future__ import annotations

from mlflow.pyfunc import PythonModel


class LtaeRunModel(PythonModel):
    """An ltae run as an MLflow pyfunc: predict(spend plan) returns the scenario table."""
    def load_context(self, context) -> None:
        """Open the logged run folder (open_run) from the model's artifacts."""
        from ltae.analysis.scenarios import load_run
        from ltae.store.registry import MODEL_ARTIFACT

        self.run = load_run(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input, params=None):
        """The plan's short-, long- and total response with intervals (as `ltae scenario`)."""
        import pandas as pd
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        from ltae.analysis.scenarios import run_scenario
        from ltae.data.validate import DataValidationError

        params = params or {}
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        try:
            res = run_scenario(self.run, model_input, recent_weeks=int(params.get("recent_weeks", 13)),
                               max_draws=int(params.get("draws", 2000)), plan_name="plan")
        except DataValidationError as exc:  # a bad plan: a 400 from `mlflow models serve`, not a 500
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        return res.returns()
