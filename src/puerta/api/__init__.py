"""The HTTP surface: Flagger hooks, the admin API, health and metrics."""
