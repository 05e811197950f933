"""The demo scenarios, one module per family."""
