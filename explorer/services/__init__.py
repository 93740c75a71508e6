"""The service layer: one module per user operation, called identically by the CLI and the TUI."""
