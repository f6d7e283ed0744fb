"""`python -m incidentflow.cli …`: the same as the `incidentflow` console script."""

from incidentflow.cli import entry

entry()
