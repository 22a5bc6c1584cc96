"""spikeforge.host."""
