"""Fine-tuning: datasets, training modes, LoRA training on the embedded base, GGUF export, parity, serving."""
