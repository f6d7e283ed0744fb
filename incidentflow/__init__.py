"""incidentflow: incident automation on durable Temporal workflows."""

__version__ = "0.1.0"
