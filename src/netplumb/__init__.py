"""netplumb: wire containers together on Linux with real kernel objects."""

__version__ = "0.1.0"
