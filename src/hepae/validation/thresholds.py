"""Pass/fail limits of a validation report, importable without its dependencies (``--help`` shows them)."""

DEFAULT_THRESHOLDS = {"chi2_ndf": 2.0, "ks": 0.01, "wasserstein": 0.01}
"""Pass/fail limits of the distribution tests: χ²/ndf, KS distance, and the Wasserstein distance in
units of the original's standard deviation."""
