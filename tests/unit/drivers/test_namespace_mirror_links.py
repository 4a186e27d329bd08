"""Which link notifications of the driver's own namespace concern the links it keeps."""

from __future__ import annotations

import pytest

from dvr.agent.drivers.namespace_mirror import names_kept_link
from dvr.agent.drivers.netlink_watch import RTM_DELLINK, RTM_NEWLINK, RTM_NEWNEIGH


class Message(dict):
    """The two things ``names_kept_link`` reads of a pyroute2 message."""

    def __init__(self, kind: int, index: int, name: str | None) -> None:
        super().__init__(header={"type": kind}, index=index)
        self.name = name

    def get_attr(self, key: str) -> str | None:
        assert key == "IFLA_IFNAME"
        return self.name


KEPT = frozenset({"qrb-1", "fpr-1"}), frozenset({7, 9})


@pytest.mark.parametrize(("messages", "concerned"), [
    ([], False),
    ([Message(RTM_NEWLINK, 20, "tap-vif")], False),  # a VIF plugged
    ([Message(RTM_DELLINK, 20, "tap-vif")], False),
    ([Message(RTM_NEWLINK, 20, "tap-vif"), Message(RTM_NEWLINK, 7, "qrb-1")], True),
    ([Message(RTM_NEWLINK, 9, "renamed")], True),  # a kept link renamed: same number
    ([Message(RTM_NEWLINK, 21, "fpr-1")], True),  # a wanted name appears
    ([Message(RTM_DELLINK, 7, "qrb-1")], True),
    ([Message(RTM_NEWLINK, 20, None)], True),  # no name: cannot tell
    ([Message(RTM_NEWNEIGH, 20, None)], True),  # not a link message
])
def test_only_notifications_that_may_name_a_kept_link_count(messages, concerned):
    assert names_kept_link(messages, *KEPT) is concerned
