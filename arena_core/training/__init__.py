"""Fine-tuning on Hugging Face Trainer: the loop, its data, its callbacks."""
