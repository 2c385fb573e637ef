"""The one error type of the training package (bad configs, data, runs)."""
from mtl_split_core.errors import MtlSplitError


class TrainingError(MtlSplitError):
    """A user error in training input (config, dataset, run directory): the message says the fix."""
