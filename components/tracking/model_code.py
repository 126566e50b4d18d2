"""The pyfunc model as code (MLflow's models-from-code): loading it unpickles nothing.

MLflow executes this file when it loads the model; ``set_model`` names the model object. Nothing
else imports it.
"""

from mlflow.models import set_model

from components.tracking.pyfunc import CapOnImageModel

set_model(CapOnImageModel())
