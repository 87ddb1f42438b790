"""``puerta simulate``: replay what Flagger would ask Puerta about a Canary, on a simulated
clock, against a policy file, with no effects outside the process.

``manifest`` reads Canary manifests, ``flagger`` is the simulated Flagger (one canary's
checks), ``harness`` runs Puerta in-process, ``engine`` drives the clock (arrivals, approvals,
fast-forward), ``timeline`` records what happened, ``report`` prints it, ``result`` says how it
ended.
"""

from puerta.simulate.engine import Simulation, SimulationOptions
from puerta.simulate.manifest import Manifest, ManifestError, load_manifest, parse_manifest
from puerta.simulate.report import render_json, render_text
from puerta.simulate.result import ExitCode, Outcome, SimulationResult

__all__ = [
    "ExitCode",
    "Manifest",
    "ManifestError",
    "Outcome",
    "Simulation",
    "SimulationOptions",
    "SimulationResult",
    "load_manifest",
    "parse_manifest",
    "render_json",
    "render_text",
]
