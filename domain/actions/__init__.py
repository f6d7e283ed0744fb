"""Action items: follow-ups tracked to completion."""
