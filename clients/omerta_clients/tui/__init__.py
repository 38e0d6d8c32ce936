"""The live monitor (omertactl monitor, omerta-top): a pure model, rich views, and the Live loop."""
