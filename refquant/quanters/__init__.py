"""Pure quantization-aware-training quanters (forward, gradients, state)."""
