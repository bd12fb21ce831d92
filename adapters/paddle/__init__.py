"""Paddle adapter: QuantConfig, PTQ, QAT and observer/quanter factories."""
