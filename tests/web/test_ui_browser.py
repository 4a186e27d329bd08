"""The web view in a real browser: Debian's headless Chromium driven by Playwright against a
real ``dvr-server`` process (temp SQLite database, free loopback port) holding a two-host
DVR topology made through the API, plus a registered host with nothing on it (network-1,
dvr_snat, as in the lab).  The server runs with authentication: the page asks for the token
once, keeps it for the browser session and never puts it in a URL.  Stores screenshots in
artifacts/ui.png and artifacts/ui-detour.png."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import httpx
import pytest

from dvr.web.routes import STATIC_DIR
from tests.web.cloud import (
    Cloud,
    build_cloud,
    create_group,
    create_vm,
    register_host,
    report_plugged,
)

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 20_000
EMPTY_HOST = "network-1"  # a registered dvr_snat host with no VM and no router
EMPTY_HOST_NOTE = "no VMs, no routers"

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    base: str
    token: str  # its admin token

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10,
                            headers={"X-Auth-Token": self.token})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real dvr-server process with authentication on (it makes its admin token in its
    state directory); stopped by its PID."""
    assert (STATIC_DIR / "index.html").is_file(), "web view not built: see web/README.md"
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dvr.server.main", "--db", f"sqlite:///{tmp_path}/dvr.db",
         "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path), "--log-level",
         "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "dvr-server did not answer within 30 s"
            time.sleep(0.1)
        yield Server(base, (tmp_path / "admin-token").read_text().strip())
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture
def cloud(server: Server) -> Iterator[tuple[Server, Cloud, str]]:
    """The server, its two-host cloud, and the host MAC of the empty host."""
    with server.client() as client:
        made = build_cloud(client)
        empty_mac = register_host(client, EMPTY_HOST, "192.0.2.101", agent_mode="dvr_snat")
        report_plugged(client, EMPTY_HOST, [], client.get("/dvr/v1/topology").json()["revision"])
        yield server, made, empty_mac


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        context.close()
        browser.close()
        assert not errors, f"the page raised: {errors}"


def _nodes(page: Any, kind: str) -> list[dict[str, str]]:
    return [n for n in page.evaluate("window.dvrView.nodes()") if n["kind"] == kind]


def _click_node(page: Any, node_id: str) -> None:
    position = page.evaluate("id => window.dvrView.position(id)", node_id)
    assert position is not None, f"{node_id} is not in the diagram"
    box = page.locator("#diagram").bounding_box()
    page.mouse.click(box["x"] + position["x"], box["y"] + position["y"])


Box = dict[str, float]

# every host box, its header band (which carries the host's label) with and without that
# label, and the empty-host note, all in diagram coordinates as cytoscape computed them
_HOST_LAYOUT_JS = """() => {
  const view = window.dvrView;
  const nodes = view.nodes();
  const childOf = (host, kind) => nodes.find((n) => n.kind === kind && n.parent === host.id);
  return nodes.filter((n) => n.kind === "host").map((host) => {
    const header = childOf(host, "host-header");
    const empty = childOf(host, "host-empty");
    return {
      id: host.id, label: host.label,
      box: view.box(host.id, true), body: view.box(host.id, false),
      header: header ? { label: header.label, body: view.box(header.id, false),
                         withLabel: view.box(header.id, true) } : null,
      empty: empty ? { label: empty.label, withLabel: view.box(empty.id, true) } : null,
    };
  });
}"""


def _inside(inner: Box, outer: Box, slack: float = 1.0) -> bool:
    return (inner["x1"] >= outer["x1"] - slack and inner["x2"] <= outer["x2"] + slack
            and inner["y1"] >= outer["y1"] - slack and inner["y2"] <= outer["y2"] + slack)


def _apart(a: Box, b: Box) -> bool:
    return a["x2"] < b["x1"] or b["x2"] < a["x1"] or a["y2"] < b["y1"] or b["y2"] < a["y1"]


def _assert_hosts_laid_out_apart(page: Any) -> list[dict[str, Any]]:
    """No two host boxes (labels included) overlap; each host's label is drawn inside its box,
    within a header band the label fits in (so the box is at least as wide as the label)."""
    hosts = page.evaluate(_HOST_LAYOUT_JS)
    for a, b in combinations(hosts, 2):
        assert _apart(a["box"], b["box"]), f"{a['id']} {a['box']} overlaps {b['id']} {b['box']}"
    for host in hosts:
        header = host["header"]
        assert header is not None, f"{host['id']} has no header band"
        assert header["label"] == host["label"]
        assert _inside(header["withLabel"], header["body"]), f"{host['id']}: label wider than box"
        assert _inside(header["body"], host["body"]), f"{host['id']}: header outside its box"
        if host["empty"]:
            assert _inside(host["empty"]["withLabel"], host["body"])
    return hosts


def _sign_in(page: Any, token: str) -> None:
    page.locator("#login").wait_for(state="visible", timeout=WAIT_MS)
    page.fill("#login-token", token)
    page.click("#login-run")


def test_ui_shows_the_cloud_updates_live_and_traces_a_routed_path(
    cloud: tuple[Server, Cloud, str], page: Any
) -> None:
    server, made, empty_mac = cloud
    base = server.base
    router_id = made.router["id"]
    vm_ids = {name: port["id"] for name, port in made.vms.items()}
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{base}/ui")

    # the page asks for the token: a wrong one is refused (asked again), the right one kept
    _sign_in(page, "not-the-token")
    page.locator("#login-hint", has_text="refused").wait_for(timeout=WAIT_MS)
    assert page.locator(".host-card").count() == 0
    _sign_in(page, server.token)
    page.locator(".host-card").first.wait_for(timeout=WAIT_MS)
    assert page.locator("#login").is_hidden()
    page.reload()  # kept for the browser session: not asked again
    page.locator(".host-card").first.wait_for(timeout=WAIT_MS)
    assert page.locator("#login").is_hidden()

    # hosts: one card each, with host MAC and liveness; one box each in the diagram
    page.locator(".host-card").nth(2).wait_for(timeout=WAIT_MS)
    cards = page.locator(".host-card")
    assert cards.count() == 3
    for host, mac in made.host_macs.items():
        card = cards.filter(has_text=host)
        assert card.count() == 1
        assert mac in card.inner_text()
        assert "alive" in card.get_attribute("class")
        assert "r1" in card.inner_text()
    host_macs = {**made.host_macs, EMPTY_HOST: empty_mac}
    host_boxes = _nodes(page, "host")
    assert {n["id"] for n in host_boxes} == {f"host:{h}" for h in host_macs}
    assert all(host_macs[n["id"][5:]] in n["label"] for n in host_boxes)

    # the layout: boxes apart, labels inside them, the empty host drawn as such
    laid_out = {h["id"]: h for h in _assert_hosts_laid_out_apart(page)}
    empty = laid_out[f"host:{EMPTY_HOST}"]
    assert empty["empty"] is not None and empty["empty"]["label"] == EMPTY_HOST_NOTE
    assert f"{EMPTY_HOST} · dvr_snat · alive" in empty["label"]
    assert all(laid_out[f"host:{h}"]["empty"] is None for h in made.host_macs)

    # the router, instantiated on both hosts: one box per host, labelled with its name
    routers = _nodes(page, "router")
    assert {n["id"] for n in routers} == {f"rtr:{router_id}@compute-1",
                                          f"rtr:{router_id}@compute-2"}
    assert all("r1" in n["label"] for n in routers)
    assert {n["id"] for n in _nodes(page, "vm")} == {f"vm:{i}" for i in vm_ids.values()}
    networks = _nodes(page, "network")
    assert sorted(n["label"].split(" ")[0] for n in networks) == ["blue", "orange"]

    # live: a VM created through the API appears without reloading the page
    with server.client() as client:
        late = create_vm(client, "blue-3", made.networks["blue"]["id"], "compute-1")
        revision = client.get("/dvr/v1/topology").json()["revision"]
        report_plugged(client, "compute-1",
                       [made.vms["blue-1"], late], revision)
    page.wait_for_function("id => window.dvrView.nodes().some(n => n.id === id)",
                           arg=f"vm:{late['id']}", timeout=WAIT_MS)
    page.locator("#counts", has_text=f"revision {revision}").wait_for(timeout=WAIT_MS)
    _assert_hosts_laid_out_apart(page)

    # click-to-pick: blue-1 then blue-2 traces the same-subnet path at once (no router)
    _click_node(page, f"vm:{vm_ids['blue-1']}")
    _click_node(page, f"vm:{vm_ids['blue-2']}")
    page.locator("#trace-verdict", has_text="delivered").wait_for(timeout=WAIT_MS)
    assert page.locator("#trace-src").input_value() == vm_ids["blue-1"]
    assert page.locator("#trace-dst").input_value() == vm_ids["blue-2"]
    same_subnet = {n["id"] for n in page.evaluate("window.dvrView.pathNodes()")}
    assert {f"vm:{vm_ids['blue-1']}", f"vm:{vm_ids['blue-2']}"} <= same_subnet
    assert not any(n.startswith("rtr:") for n in same_subnet)

    # the routed path, picked with the selects: blue-1 (compute-1) -> orange-1 (compute-2)
    page.select_option("#trace-src", vm_ids["blue-1"])
    page.select_option("#trace-dst", vm_ids["orange-1"])
    page.click("#trace-run")
    page.locator("#trace-summary", has_text="orange-1").wait_for(timeout=WAIT_MS)
    assert "delivered" in page.locator("#trace-verdict").inner_text()

    path = {n["id"] for n in page.evaluate("window.dvrView.pathNodes()")}
    assert {f"vm:{vm_ids['blue-1']}", f"rtr:{router_id}@compute-1",
            f"vm:{vm_ids['orange-1']}", "host:compute-1", "host:compute-2"} <= path
    assert f"rtr:{router_id}@compute-2" not in path  # routed on the source host only
    edges = page.evaluate("window.dvrView.traceEdges()")
    assert [(e["source"], e["target"]) for e in edges] == [
        (f"vm:{vm_ids['blue-1']}", f"rtr:{router_id}@compute-1"),
        (f"rtr:{router_id}@compute-1", f"vm:{vm_ids['orange-1']}"),
    ]
    assert "VXLAN VNI" in edges[1]["label"] and "compute-2" in edges[1]["label"]

    rows = page.locator("#trace-steps tbody tr.step")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    forward = texts[: next(i for i, t in enumerate(texts) if "deliver" in t.lower()) + 1]
    assert any("qrouter-" in t for t in forward), "router namespace step missing"
    host_mac_1 = made.host_macs["compute-1"]
    assert any("br-tun table 1" in t and f"mod_dl_src:{host_mac_1}" in t for t in forward)
    assert any("VXLAN VNI" in t and "192.0.2.11 → 192.0.2.12" in t for t in forward)
    assert any("compute-2" in t and "br-tun table 9" in t for t in forward)
    assert any("compute-2" in t and "br-int table 1" in t for t in forward)
    assert page.locator("#trace-steps tr.direction.reply").count() == 1

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
    assert (ARTIFACTS / "ui.png").stat().st_size > 10_000

    # a VM on the formerly empty host: its box fills, and a path from compute-1 to it, which
    # would run straight through compute-2's box, bends below the hosts instead
    with server.client() as client:
        green = create_vm(client, "green-1", made.networks["blue"]["id"], EMPTY_HOST)
        revision = client.get("/dvr/v1/topology").json()["revision"]
        report_plugged(client, EMPTY_HOST, [green], revision)
    page.wait_for_function("id => window.dvrView.nodes().some(n => n.id === id)",
                           arg=f"vm:{green['id']}", timeout=WAIT_MS)
    laid_out = {h["id"]: h for h in _assert_hosts_laid_out_apart(page)}
    assert laid_out[f"host:{EMPTY_HOST}"]["empty"] is None
    page.select_option("#trace-src", vm_ids["blue-1"])
    page.select_option("#trace-dst", green["id"])
    page.click("#trace-run")
    page.locator("#trace-summary", has_text="green-1").wait_for(timeout=WAIT_MS)
    assert "delivered" in page.locator("#trace-verdict").inner_text()
    edges = page.evaluate("window.dvrView.traceEdges()")
    assert [(e["source"], e["target"]) for e in edges] == [
        (f"vm:{vm_ids['blue-1']}", f"vm:{green['id']}")]
    assert EMPTY_HOST in edges[0]["label"]
    between = laid_out["host:compute-2"]["body"]
    ends = [laid_out["host:compute-1"]["body"], laid_out[f"host:{EMPTY_HOST}"]["body"]]
    assert ends[0]["x2"] < between["x1"] and between["x2"] < ends[1]["x1"]  # it is in the way
    assert edges[0]["midpoint"]["y"] > between["y2"], "the path crosses compute-2's box"
    page.screenshot(path=str(ARTIFACTS / "ui-detour.png"), full_page=True)
    assert not any(server.token in url for url in urls), "the token went into a URL"
    assert any(url.endswith("/dvr/v1/events") for url in urls)  # the live stream was followed


def test_ui_shows_a_ports_groups_and_draws_a_denied_path_in_its_own_colour(
    cloud: tuple[Server, Cloud, str], page: Any
) -> None:
    server, made, _ = cloud
    vm_ids = {name: port["id"] for name, port in made.vms.items()}
    with server.client() as client:
        locked = create_group(client, "locked")  # egress only: nobody may come in
        target = create_vm(client, "locked-1", made.networks["orange"]["id"], "compute-2",
                           security_groups=[locked["id"]])
        unfiltered = create_vm(client, "open-1", made.networks["blue"]["id"], "compute-1",
                               port_security_enabled=False, security_groups=[])
        revision = client.get("/dvr/v1/topology").json()["revision"]
        for host, extra in (("compute-1", unfiltered), ("compute-2", target)):
            report_plugged(client, host, [p for p in made.vms.values()
                                          if p["binding:host_id"] == host] + [extra], revision)
    page.goto(f"{server.base}/ui")
    _sign_in(page, server.token)
    page.wait_for_function("id => window.dvrView.nodes().some(n => n.id === id)",
                           arg=f"vm:{target['id']}", timeout=WAIT_MS)

    # before any pick the card says how to see groups; picking shows the port's groups
    assert "Pick a VM" in page.locator("#ports").inner_text()
    page.select_option("#trace-src", unfiltered["id"])
    page.locator("#ports .port-unfiltered").wait_for(timeout=WAIT_MS)
    assert "port security off" in page.locator("#ports").inner_text()

    # the routed path to a VM whose group lets nobody in: denied, in its own colour
    page.select_option("#trace-src", vm_ids["blue-1"])
    page.select_option("#trace-dst", target["id"])
    page.click("#trace-run")
    page.locator("#trace-verdict", has_text="denied").wait_for(timeout=WAIT_MS)
    assert page.locator("#trace-verdict").inner_text() == "✘ denied by ingress firewall"
    denial = page.locator("#trace-denial").inner_text()
    assert "locked-1's ingress firewall on compute-2 denied it at step" in denial
    assert "no rule of the port's groups allows it" in denial
    step = denial.split("at step ")[1].split(":")[0]
    (denying,) = page.locator("#trace-steps tr.denying").all()
    assert denying.locator("td").first.inner_text() == step
    assert page.locator("#trace-steps tr.step.firewall").count() >= 2  # egress and ingress

    denied_edges = page.evaluate("window.dvrView.traceEdges()")
    assert denied_edges and all(e["denied"] for e in denied_edges)
    assert denied_edges[-1]["target"] == f"vm:{target['id']}"  # it reached the port's firewall
    assert "denied (ingress firewall)" in denied_edges[-1]["label"]
    assert [n["id"] for n in page.evaluate("window.dvrView.dropNodes()")] == [
        f"vm:{target['id']}"]
    denied_colours = {e["color"] for e in denied_edges}

    # both ends' groups, with their rules one click away
    ports = page.locator("#ports .port-groups")
    assert ports.count() == 2
    assert "its ingress firewall denied the traced packet" in ports.nth(1).inner_text()
    default = ports.nth(0).locator("details.sg", has_text="default")
    assert default.locator("li.rule").first.is_hidden()
    default.locator("summary").click()
    rules = [r.inner_text() for r in default.locator("li.rule").all()]
    assert "ingress IPv4 any from group default" in rules
    assert "egress IPv4 any to any" in rules
    locked_rules = ports.nth(1).locator("details.sg", has_text="locked")
    locked_rules.locator("summary").click()
    assert all(r.startswith("egress") for r in
               [r.inner_text() for r in locked_rules.locator("li.rule").all()])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-denied.png"), full_page=True)

    # an allowed path is drawn in the usual colour, and says nothing of a denial
    page.select_option("#trace-dst", vm_ids["orange-1"])
    page.click("#trace-run")
    page.locator("#trace-verdict", has_text="delivered").wait_for(timeout=WAIT_MS)
    assert page.locator("#trace-denial").is_hidden()
    allowed_edges = page.evaluate("window.dvrView.traceEdges()")
    assert allowed_edges and not any(e["denied"] for e in allowed_edges)
    allowed_colours = {e["color"] for e in allowed_edges}
    assert len(denied_colours) == 1 and len(allowed_colours) == 1
    assert denied_colours != allowed_colours
    assert page.evaluate("window.dvrView.dropNodes()") == []
    # the group card stays open across the redraw the trace caused
    assert ports.nth(0).locator("details.sg", has_text="default").get_attribute(
        "open") is not None
