"""The lightweight host runtime: a process in its own namespaces."""
