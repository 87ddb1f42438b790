"""Fault injection with real Puerta replica processes, a private PostgreSQL cluster and fake
CI / Slack / GitHub servers: kill -9, SIGTERM, database restarts and misbehaving providers,
counting duplicates and losses."""
