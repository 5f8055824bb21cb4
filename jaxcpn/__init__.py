"""jaxcpn: JAX environments for green computing power networks (STPer) and two-timescale MEC (TTOSC)."""

__version__ = "0.1.0"
