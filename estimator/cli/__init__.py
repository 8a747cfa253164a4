"""The ``estimator`` command line: one parser per command and the function that runs it.

The top layer: may import any package; nothing imports it but ``__main__``.
"""

from estimator.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
