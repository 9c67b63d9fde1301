"""Long work in the background: training, registration, evaluations and the evaluate/train rounds, one at a time."""
