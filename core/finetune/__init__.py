"""Fine-tuning: datasets, LoRA training on the embedded base, GGUF export, parity, the adapter registry, serving."""
