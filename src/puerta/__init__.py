"""Puerta: a gating service for Flagger canary deployments."""

__version__ = "0.1.0"
