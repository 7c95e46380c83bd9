"""pipework's command line, parsed into requests (pure: no kernel access)."""
