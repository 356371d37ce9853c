"""``python -m ember`` is the ``ember`` command."""

from ember.cli.main import run

run()
