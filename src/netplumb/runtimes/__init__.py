"""Which network namespace is this guest? netplumb hosts, netns names, PIDs, paths, Docker."""
