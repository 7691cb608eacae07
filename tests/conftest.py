import matplotlib

# Tests draw figures without a display.
matplotlib.use("Agg")
