"""nftables rules rendered as text from netplumb's records (pure)."""
