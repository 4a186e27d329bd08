"""Which link notifications of the driver's own namespace concern the links it keeps."""

from __future__ import annotations

import pytest

from dvr.agent.drivers.namespace_mirror import names_kept_link
from dvr.agent.drivers.netlink_watch import LinkNotice
from dvr.agent.drivers.rtnl_wire import RTM_DELLINK, RTM_NEWLINK, RTM_NEWNEIGH

KEPT = frozenset({"qrb-1", "fpr-1"}), frozenset({7, 9})


@pytest.mark.parametrize(("messages", "concerned"), [
    ([], False),
    ([LinkNotice(RTM_NEWLINK, 20, "tap-vif")], False),  # a VIF plugged
    ([LinkNotice(RTM_DELLINK, 20, "tap-vif")], False),
    ([LinkNotice(RTM_NEWLINK, 20, "tap-vif"), LinkNotice(RTM_NEWLINK, 7, "qrb-1")], True),
    ([LinkNotice(RTM_NEWLINK, 9, "renamed")], True),  # a kept link renamed: same number
    ([LinkNotice(RTM_NEWLINK, 21, "fpr-1")], True),  # a wanted name appears
    ([LinkNotice(RTM_DELLINK, 7, "qrb-1")], True),
    ([LinkNotice(RTM_NEWLINK, 20, None)], True),  # no name: cannot tell
    ([LinkNotice(RTM_NEWNEIGH, 20, None)], True),  # not a link message
])
def test_only_notifications_that_may_name_a_kept_link_count(messages, concerned):
    assert names_kept_link(messages, *KEPT) is concerned
