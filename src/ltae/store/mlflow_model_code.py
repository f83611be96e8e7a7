"""MLflow "model from code" file for ltae runs: logged with each registered run (see
:mod:`ltae.store.registry`); MLflow runs it to build the model, so no Python object is pickled."""

from mlflow.models import set_model

from ltae.store.mlflow_pyfunc import LtaeRunModel

set_model(LtaeRunModel())
