"""`python -m turnstate ...`: the same as the `turnstate` command."""

from turnstate.cli import app

app()
