"""Public peers the benchmarks run side by side with tetragen: their venv (venv.py) and the small adapters that load a
peer's saved model with the peer's own classes and draw samples from it. No peer code lives here."""
