"""spikeforge: a hardware co-design toolchain for spiking neural networks.

Subpackages (each a top-level folder of the repository):

- ``spikeforge.core``     the neuron core's definition shared by every side: CoreConfig, CoreImage,
                          fixed-point formats (docs/core-spec.md)
- ``spikeforge.compiler`` network model, file format, quantisation, fitting -> CoreImage
- ``spikeforge.sim``      golden model (bit-exact NumPy spec), float reference, NEST, RTL backends
- ``spikeforge.hdl``      Amaranth neuron core and UART link
- ``spikeforge.host``     board driver, virtual board, SpiNNaker backend
- ``spikeforge.boards``   FPGA board definitions and bitstream builds
- ``spikeforge.demos``    blimp altitude control, place recognition
"""

__version__ = "0.1.0"
