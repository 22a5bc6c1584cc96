"""cocotb testbench for the neuron core: driver, monitor, reference model, scoreboard."""
