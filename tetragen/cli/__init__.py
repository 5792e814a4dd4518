"""The `tetragen` command line: one small module per verb."""
