"""HTTP handlers: Neutron API v2.0 and the dvr agent protocol (/dvr/v1)."""
