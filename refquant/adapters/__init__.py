"""Framework adapters (importable as ``refquant.adapters``)."""
