"""jaxcpn: JAX environments for green computing power networks (STPer) and two-timescale MEC (TTOSC)."""

__version__ = "0.1.0"

# Register the gymnasium ids when gymnasium is installed (string entry points: nothing heavy is
# imported until gymnasium.make is called).
try:
    import gymnasium as _gymnasium
except ImportError:  # gymnasium is an optional extra ("adapters")
    _gymnasium = None
if _gymnasium is not None and "jaxcpn/GreenCPN-v0" not in _gymnasium.registry:
    _gymnasium.register(
        id="jaxcpn/GreenCPN-v0",
        entry_point="jaxcpn.wrappers.gymnasium:GreenCPNGymEnv",
        vector_entry_point="jaxcpn.wrappers.gymnasium:GreenCPNVectorEnv",
    )
