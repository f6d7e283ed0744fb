"""Fakes of vendor APIs: real HTTP servers on loopback speaking the vendors' wire formats."""
