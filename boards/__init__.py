"""spikeforge.boards: networks to FPGA bitstreams for real boards (docs/bitstreams.md).

- ``catalog``: the boards (iCEBreaker, ULX3S 85F, Cmod A7-35T) and what their FPGAs hold
- ``pll``: PLL dividers per family and the frequency they achieve; ``top``: clock, reset, UART pins
- ``capacity``: does a CoreConfig fit a board (Yosys' memory census, calibrated logic model)
- ``flow``: ``compile_for_board`` -- core choice, activity and latency, bitstream, reports
- ``build``: the YoWASP Yosys/nextpnr/icepack/ecppack run, cached; ``netlist``: what it edits
- ``standalone`` + ``boot_rom``: host-less bitstreams that load the core from a ROM
- ``interim_link``: a raw UART bus bridge for resource and timing studies where the protocol link does
  not fit (the iCE40 UP5K); the UART itself is spikeforge.hdl.uart
- ``vivado``: the Artix-7 non-project Tcl build; ``flash``: openFPGALoader
- ``gate_level``: the synthesised iCE40 netlist under the cocotb testbench
- ``cli``: ``compile_command`` and ``flash_command`` (``spikeforge compile`` / ``spikeforge flash``)
"""
