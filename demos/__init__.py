"""spikeforge.demos."""
