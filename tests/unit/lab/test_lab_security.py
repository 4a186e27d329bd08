"""How lab VMs are protected: default + demo-web + the named groups, or no port security."""

from dvr.lab.security import (
    DEMO_WEB_RULES,
    LAB_VM,
    VmSecurity,
    ensure_demo_web,
    find_group,
    port_body,
)


class FakeServer:
    """The two calls the lab makes: list groups, create a group or a rule."""

    def __init__(self, groups):
        self.groups = list(groups)
        self.posts = []

    def get(self, path, **params):
        assert path == "/v2.0/security-groups"
        return {"security_groups": self.groups}

    def request(self, method, path, json):
        self.posts.append((method, path, json))
        if path == "/v2.0/security-groups":
            group = {"id": f"id-{len(self.groups)}", **json["security_group"]}
            self.groups.append(group)
            return {"security_group": group}
        return {"security_group_rule": json["security_group_rule"]}


def test_lab_vms_are_in_default_and_demo_web_plus_the_named_groups():
    assert LAB_VM.wanted_groups == ("default", "demo-web")
    extra = VmSecurity(("db", "default", "db"))
    assert extra.wanted_groups == ("default", "demo-web", "db")
    assert port_body(extra, ["a", "b"]) == {"port_security_enabled": True,
                                            "security_groups": ["a", "b"]}


def test_no_port_security_means_no_groups():
    off = VmSecurity(port_security=False)
    assert off.wanted_groups == ()
    assert port_body(off, []) == {"port_security_enabled": False, "security_groups": []}


def test_demo_web_is_created_once_with_tcp_80_and_icmp():
    server = FakeServer([{"id": "d", "name": "default"}])
    group_id = ensure_demo_web(server)
    rules = [body["security_group_rule"] for _, path, body in server.posts
             if path.endswith("rules")]
    assert [{k: v for k, v in r.items() if k != "security_group_id"} for r in rules] == list(
        DEMO_WEB_RULES
    )
    assert {r["security_group_id"] for r in rules} == {group_id}
    assert ensure_demo_web(server) == group_id and len(server.posts) == 3
    assert find_group(server, "default") == "d" and find_group(server, "d") == "d"
    assert find_group(server, "nope") is None
