"""Pure DataFrame -> DataFrame transforms: no I/O, no collect, no config reads."""
