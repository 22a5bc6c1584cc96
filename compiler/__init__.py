"""spikeforge.compiler."""
