"""The pure domain: payloads, decisions, rollout identity, gates. No I/O happens here."""
