"""The `opens` command line (DESIGN §4)."""
