"""The `twin` command line."""
