"""The ``puerta`` command line."""
