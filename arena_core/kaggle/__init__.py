"""Shipping to Kaggle: wheels, the offline bundle, its listing and metadata, upload, and the notebooks."""
