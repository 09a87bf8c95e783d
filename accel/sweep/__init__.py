"""Design-space sweeps (``accel sweep``): one model over array sizes on one board.

- :mod:`.points`: one point (plan, fit check, estimate or real build) as a picklable job;
- :mod:`.runner`: runs the points in process, in local worker processes or on a Dask
  cluster, and keeps every finished point so a re-run or a killed sweep resumes;
- :mod:`.report`: CSV, JSON, Markdown and the plots (Pareto fronts, Fmax vs array);
- :mod:`.sweep`: checks the request, makes the jobs and ties the three together.
"""

from .points import ModelSource, PointJob, SweepPoint, run_point
from .sweep import parse_arrays, run_sweep

__all__ = ["ModelSource", "PointJob", "SweepPoint", "parse_arrays", "run_point", "run_sweep"]
