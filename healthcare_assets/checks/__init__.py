"""Asset checks: data-quality gates now; fairness, drift and model gates join them."""
