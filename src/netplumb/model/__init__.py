"""Pure value types: names, MAC addresses, interface addresses. Standard library only."""
