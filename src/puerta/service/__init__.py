"""Application services: load state, call the pure domain, store the result, in one transaction."""
