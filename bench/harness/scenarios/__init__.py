"""One module per scenario; each `run(bench)` adds its rows, notes and targets to the Bench."""
