"""Pictures of the system (pure rendering)."""
