"""Jobs: `main(argv)` parses, loads config, builds the session and calls `run(spark, pipeline,
date)`, which wires I/O to the pure transforms in lakeloop.transforms."""
