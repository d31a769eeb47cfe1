"""The benchmark workloads W1-W4 of ../shared/bench/WORKLOADS.md, each in three
implementations that start from the same weights on the same batch: ember, PyTorch and a
hand-written NumPy floor."""
