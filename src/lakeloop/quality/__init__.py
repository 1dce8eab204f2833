"""Data quality: row-level rules compiled from GX suites, and GX table-level validation."""
