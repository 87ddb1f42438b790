"""Allow ``python -m puerta``."""

from puerta.cli.main import main

main()
