from spikeforge.cli import main

main()
