"""The public Python API of one run: ``run(RunConfig(...))`` trains and evaluates one configuration.

The implementation lives in :mod:`harness.training.runner`; this module keeps the documented name.
"""

from harness.training.runner import resolve, run

__all__ = ["resolve", "run"]
