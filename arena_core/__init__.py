"""arena_core: pairwise preference models for the Chatbot Arena Kaggle competitions."""

__version__ = "0.1.0"
