"""Software-defined assets, one module per layer. Thin: logic lives in domain/ and transforms/."""
