"""Green computing power network (STPer system model)."""

from jaxcpn.cpn.env import GreenCPN, check_action, hydro_discount, routing_tables, workload_model
from jaxcpn.cpn.generator import DEFAULTS, generate_instance, random_topology, validate_params
from jaxcpn.cpn.types import CPNConfig, CPNObservation, CPNParams, CPNState

__all__ = [
    "CPNConfig", "CPNObservation", "CPNParams", "CPNState", "DEFAULTS", "GreenCPN", "check_action",
    "generate_instance", "hydro_discount", "random_topology", "routing_tables", "validate_params",
    "workload_model",
]
