"""Postmortems: drafted from the incident (facts, folded timeline), rendered from Jinja2 templates."""
