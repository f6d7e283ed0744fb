"""Every side effect lives here, behind small ports."""
