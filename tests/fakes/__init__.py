"""Fakes of the external systems Puerta talks to, served on 127.0.0.1 by real HTTP servers."""
