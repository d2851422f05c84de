"""Networks that both models and metrics use (LPIPS), so that no model depends on fewgan.metrics."""
