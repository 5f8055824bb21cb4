"""Two-timescale MEC environment (TTOSC system model): deployment per frame, scheduling per slot."""

from jaxcpn.mec.env import ScheduleFn, TwoTimescaleMEC
from jaxcpn.mec.generator import InstanceRanges, generate_params, sample_params
from jaxcpn.mec.model import SlotDelay, slot_delay
from jaxcpn.mec.types import MECConfig, MECParams, MECState, check_deployment, storage_feasible, validate_params

__all__ = [
    "InstanceRanges", "MECConfig", "MECParams", "MECState", "ScheduleFn", "SlotDelay", "TwoTimescaleMEC",
    "check_deployment", "generate_params", "sample_params", "slot_delay", "storage_feasible", "validate_params",
]
