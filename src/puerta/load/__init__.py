"""Puerta's built-in HTTP load generator: the engine of the ``load`` gate.

It keeps a canary busy with traffic while Flagger analyses the canary's metrics, and reports
what it saw (achieved rate, errors by kind, latency percentiles measured from each request's
scheduled send time) so the gate can pass or refuse on them.
"""

from puerta.load.generator import LoadGenerator
from puerta.load.spec import LoadSpec
from puerta.load.stats import ERROR_KINDS, RATE_ERROR_KINDS, LoadStats

__all__ = ["ERROR_KINDS", "RATE_ERROR_KINDS", "LoadGenerator", "LoadSpec", "LoadStats"]
