"""The neuron core's definition, shared by compiler, golden model, RTL and host.

Everything here follows docs/core-spec.md; hdl/ and host/ both import from this package and never
from each other.
"""

from spikeforge.core.config import CoreConfig, CoreConfigError
from spikeforge.core.image import CoreImage, CoreImageError

__all__ = ["CoreConfig", "CoreConfigError", "CoreImage", "CoreImageError"]
