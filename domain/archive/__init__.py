"""The incident archive: what outlives Temporal's retention (pure models; the store is activities/records)."""
