"""Multi-objective studies (accuracy up, size down) on Ray Tune with Optuna sampling and pruning."""
