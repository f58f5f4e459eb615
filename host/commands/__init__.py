"""One module per subcommand (asv style)."""
