"""The MLflow pyfunc of the member risk models, apart from domain/risk.py so loading the code location
does not import MLflow's model machinery."""

import pandas as pd
from mlflow.pyfunc import PythonModel

from healthcare_assets.domain.risk import RiskModels


class MemberRiskModel(PythonModel):
    """The MLflow pyfunc: member feature rows in, the four prediction columns out."""

    def __init__(self, models: RiskModels):
        self.models = models

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.models.predict(model_input)
