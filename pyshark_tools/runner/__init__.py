"""Reading many captures: plan the inputs, one tshark+plugin job per file run here or on Dask, the result
cache, sessions stitched across file boundaries. `configured()` sets how (jobs, cache, scheduler)."""
from .options import RunOptions, configured, current_options
from .plan import Capture, expand_inputs
from .run import RunRows, read_captures, run_captures

__all__ = ["RunOptions", "configured", "current_options", "Capture", "expand_inputs", "RunRows", "read_captures",
           "run_captures"]
