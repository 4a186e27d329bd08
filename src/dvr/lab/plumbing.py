"""How the lab makes a device that a host's userspace OVS switches: a tap or a veth.

- ``tap``: an OVS ``type=tap`` port; ovs-vswitchd (netdev datapath) creates the tap device
  and keeps its file descriptor, and the device is then moved into the namespace at the
  other end (a VM's, or the fabric's).  OVS reads and writes frames through that
  descriptor, which keeps working after the move, as a hypervisor's tap does; OVS can no
  longer read the device's state or counters (the interface shows ``link_state=down`` and
  ``?`` statistics), which nothing in dvr uses.
- ``veth``: a veth pair whose OVS end is a ``system`` port (ovs-vswitchd reads it through
  AF_PACKET) and whose other end is in the other namespace.

The lab makes its VM NICs and its hosts' uplinks to the fabric the same way (one choice,
``dvr lab up --vm-plumbing``), and the OVN reference lab follows the same choice.

Every device whose frames a host's ovs-vswitchd reads through a tap (a VM's NIC, the
fabric's end of an uplink) has a queue of ``DEVICE_QUEUE`` frames.  A tap drops what does
not fit in its queue (1,000 frames by default) where a hypervisor's virtio ring would make
the guest wait: on a machine where a TCP stream runs at ~2 Gbit/s through one
ovs-vswitchd thread, the sending VM's tap dropped 36,070 frames over four 3–4 s streams,
and 3 % of pings were lost beside the stream; with 10,000, none (a TCP stream's window, a
few MB, fits).
"""

from __future__ import annotations

from enum import StrEnum


class Plumbing(StrEnum):
    TAP = "tap"
    VETH = "veth"


DEFAULT_PLUMBING = Plumbing.TAP
DEVICE_QUEUE = 10_000  # frames: a tap's txqueuelen (see above)
