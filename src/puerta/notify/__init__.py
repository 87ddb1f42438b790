"""Notifications: where messages about rollouts go (Slack, Microsoft Teams, a signed JSON
webhook), each sink one module behind a small Protocol (``base.py``)."""
