"""Conformance fixtures: reader, writer, targets and runner."""
