"""From canonical rows to token ids: the prompt template, the fair token budget, and token-budget batches."""
