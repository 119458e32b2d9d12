"""What the tests and the benchmarks share, imported by both as a library (not part of the
service's wheel): throwaway databases and restartable PostgreSQL, `timestep serve` processes,
fake model and trace servers (`fakes/`), helpers for following and checking runs, the agents with
gated tools that server processes under test load, and the chaos soak."""
