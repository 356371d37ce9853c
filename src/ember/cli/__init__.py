"""The ``ember`` command line: one module per verb, each a :class:`Command`."""
