"""The ground layer: pure, deterministic incident knowledge. Imports nothing of ours."""
