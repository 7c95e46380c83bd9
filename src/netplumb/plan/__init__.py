"""Plans: ordered lists of typed actions computed from requests and observed state (pure)."""
