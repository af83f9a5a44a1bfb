"""How good are the predictions: metrics, baselines, and the evaluation report."""
