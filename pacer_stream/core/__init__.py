"""The pure pacing core: no I/O, no wall clock; every time-dependent call takes ``now``."""
