"""PyNN's procedural API (create, connect, record, set) over the spikeforge backend."""

from pyNN import common
from pyNN.common.procedural_api import set  # noqa: F401
from pyNN.connectors import FixedProbabilityConnector

from spikeforge.pynn import simulator
from spikeforge.pynn.populations import Population
from spikeforge.pynn.projections import Projection
from spikeforge.pynn.standardmodels import StaticSynapse

create = common.build_create(Population)
connect = common.build_connect(Projection, FixedProbabilityConnector, StaticSynapse)
record = common.build_record(simulator)


def record_v(source, filename):
    return record(["v"], source, filename)


def record_gsyn(source, filename):
    return record(["isyn_exc", "isyn_inh"], source, filename)
