"""OVN's side of port -> first ping (bench_port.py measures dvr's), on an ``ovnlab.OvnLab``.

Per run, the same way as dvr's (``portprobe``):
1. before the clock starts, the guest is prepared on HOST (namespace ``vm-bp<N>``, a veth
   NIC, the OVN lab's tenant MTU) and the probe is started in SOURCE, a VM on the other host
   (``ping -D -i 0.015`` to the new port's address, routed through the logical router);
2. t0: the northbound write, one ``ovn-nbctl`` transaction: ``lsp-add`` +
   ``lsp-set-addresses`` (and, in a lab with ``firewall``, the port joins the VMs' port
   group, as a new port joins its security group's); then the VIF is plugged into br-int
   with ``external_ids:iface-id`` = the logical port's name;
3. measured: the first echo reply, from t0 and from the plug;
4. the VIF is unplugged, the guest removed, the logical port deleted, and the run waits
   until every chassis has caught up (``ovn-nbctl --wait=hv sync``).
"""

from __future__ import annotations

import random
import time

from ovnlab import GENEVE_MTU, VMS, OvnLab, network
from portprobe import (
    PROBE_HEAD_START,
    WAIT,
    Guest,
    first_reply,
    guest_ip,
    guest_mac,
    is_reply,
    ms,
    start_probe,
)


class OvnPortBench:
    def __init__(self, lab: OvnLab, host: str, switch: str, source: str, seed: int):
        self.lab = lab
        self.host = host
        self.switch = network(switch)
        if {vm.name: vm.host for vm in VMS}[source] == host:
            raise ValueError(f"the source VM {source} must be on another host than {host}")
        self.source = source
        self.rng = random.Random(seed)

    def one_run(self, index: int) -> dict[str, object]:
        net = self.switch
        guest = Guest(index, guest_mac(self.rng), guest_ip(net.cidr, index), net.prefixlen,
                      net.gateway_ip, GENEVE_MTU)
        name = f"bp{index}"
        host = self.lab.host_env(self.host)
        host.run(guest.prepare_argv())
        result: dict[str, object] = {"ip": guest.ip, "mac": guest.mac}
        try:
            with start_probe(self.lab, self.source, guest.ip) as ping:
                time.sleep(PROBE_HEAD_START)
                t0 = time.time()
                self.lab.nbctl(*self.lab.new_port_args(net.name, name, guest.mac, guest.ip))
                t_written = time.time()
                host.run(guest.plug_argv(host.ovsdb, name))
                t_plugged = time.time()
                reply = ping.wait_for(is_reply, t0, WAIT + 2)
            result.update({"nb_write_ms": ms(t_written, t0), "plug_ms": ms(t_plugged, t_written),
                           **first_reply(t0, t_plugged, reply)})
        finally:  # undo, and wait until every chassis has caught up with the removal
            t_undo = time.time()
            for argv in guest.remove_argvs(host.ovsdb):
                host.run(argv, check=False)
            self.lab.nbctl("--if-exists", "lsp-del", name)
            self.lab.nbctl("--wait=hv", "sync")
        result["cleanup_synced_ms"] = ms(time.time(), t_undo)
        return result
