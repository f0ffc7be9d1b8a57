"""Controller layer: steer a constellation from Python scripts or the console.

from controller import Controller, load_config
"""

from controller.config import ControllerConfig, load_config
from controller.controller import Controller, Reply, SatelliteHandle

__all__ = ["Controller", "ControllerConfig", "Reply", "SatelliteHandle", "load_config"]
