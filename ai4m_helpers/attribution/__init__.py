from .params import PARAMS  # noqa: F401  (light: the runner reads it)
