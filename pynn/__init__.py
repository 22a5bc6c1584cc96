"""spikeforge.pynn: a PyNN 0.13 backend that runs ordinary PyNN scripts on spikeforge's neuron core.

    import spikeforge.pynn as sim          # instead of pyNN.nest or pyNN.spiNNaker

    sim.setup(timestep=1.0)                # backend="golden" (default), "float", "nest", "rtl",
                                           # "board" (port=...), or "capture"
    inp = sim.Population(10, sim.SpikeSourcePoisson(rate=20.0))
    exc = sim.Population(100, sim.IF_curr_exp(tau_m=20.0), label="exc")
    sim.Projection(inp, exc, sim.FixedProbabilityConnector(0.2), sim.StaticSynapse(weight=0.5, delay=1.0))
    exc.record(["spikes", "v"])
    sim.run(1000.0)
    block = exc.get_data()                 # a Neo Block, as every PyNN backend returns
    sim.end()

The structure follows PyNN's own backends (pyNN.mock is the template): PyNN's common Population,
Projection, connectors and recording, over a simulator state that turns the objects into a spikeforge
Network at run() (pynn/build.py) and runs it on the chosen spikeforge backend. What is supported, and
the clear error for everything else: docs/pynn.md.
"""

from pyNN import errors, random, space  # noqa: F401
from pyNN.connectors import (  # noqa: F401
    AllToAllConnector,
    ArrayConnector,
    CloneConnector,
    CSAConnector,
    DisplacementDependentProbabilityConnector,
    DistanceDependentProbabilityConnector,
    FixedNumberPostConnector,
    FixedNumberPreConnector,
    FixedProbabilityConnector,
    FixedTotalNumberConnector,
    FromFileConnector,
    FromListConnector,
    IndexBasedProbabilityConnector,
    OneToOneConnector,
    SmallWorldConnector,
)
from pyNN.network import Network  # noqa: F401
from pyNN.parameters import Sequence  # noqa: F401
from pyNN.random import GSLRNG, NumpyRNG, RandomDistribution  # noqa: F401
from pyNN.space import Cuboid, Grid2D, Grid3D, Line, RandomStructure, Space, Sphere  # noqa: F401
from pyNN.standardmodels import StandardCellType

from spikeforge.pynn.control import (  # noqa: F401
    NativeRNG,
    end,
    external_devices,
    extra_models,
    get_current_time,
    get_machine,
    get_max_delay,
    get_min_delay,
    get_time_step,
    initialize,
    last_network,
    last_result,
    num_processes,
    rank,
    reset,
    run,
    run_for,
    run_until,
    set_allow_delay_extensions,
    set_number_of_neurons_per_core,
    set_number_of_synapse_cores,
    setup,
)
from spikeforge.pynn.errors import (  # noqa: F401
    SegmentChangeError,
    SpiNNakerOnlyCallNote,
    UnsupportedFeatureError,
)
from spikeforge.pynn.populations import Assembly, Population, PopulationView  # noqa: F401
from spikeforge.pynn.procedural_api import connect, create, record, record_gsyn, record_v, set  # noqa: F401
from spikeforge.pynn.projections import Projection  # noqa: F401
from spikeforge.pynn.standardmodels import *  # noqa: F401, F403
from spikeforge.pynn.standardmodels import (  # noqa: F401
    STDPMechanism,
    SpikePairRule,
    AdditiveWeightDependence,
    StaticSynapse,
    IF_curr_exp,
    SpikeSourceArray,
    SpikeSourcePoisson,
)
from spikeforge.pynn.simulator import name  # noqa: F401


def _unsupported_connector(name: str):
    def __init__(self, *args, **kwargs):
        raise UnsupportedFeatureError(
            f"sPyNNaker's {name}", "PyNN's connectors (AllToAll, OneToOne, FixedProbability, FromList, Array, "
            "FixedNumberPre/Post, FixedTotalNumber, DistanceDependentProbability, ...)",
            "build the connection list in Python and use FromListConnector")

    return type(name, (), {"__init__": __init__})


KernelConnector = _unsupported_connector("KernelConnector")
ConvolutionConnector = _unsupported_connector("ConvolutionConnector")
PoolDenseConnector = _unsupported_connector("PoolDenseConnector")


def list_standard_models():
    """The StandardCellType classes spikeforge.pynn runs."""
    return ["IF_curr_exp", "SpikeSourceArray", "SpikeSourcePoisson"]
