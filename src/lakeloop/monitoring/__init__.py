"""Monitoring: the champion's reference profile (written at training time), the monitor job's
statistics (drift, late-label quality, data-quality trend) and the retrain policy."""
