"""The tracer asks a real switch only through one narrow port (docs/design.md §5).  What the
tracer's modules may import is checked with every other layer rule in tests/unit/test_layers.py.
"""

from __future__ import annotations


def test_the_switch_port_is_one_method():
    from dvr.trace.verify import SwitchProbe

    methods = [n for n in vars(SwitchProbe) if not n.startswith("_")]
    assert methods == ["trace"]
