"""omertactl: the command-line client of omerta-meshd (one module per command group)."""
