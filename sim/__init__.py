"""Simulation backends: the golden model (the executable core spec), the float reference, NEST, RTL."""
