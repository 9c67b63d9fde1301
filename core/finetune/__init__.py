"""Fine-tuning: datasets now; LoRA training, export and registration come with the fine-tuning issue."""
