import pytest

from dvr.cli.main import build_parser, main
from dvr.cli.ops import router_placement
from dvr.cli.table import format_table


def test_router_placement_lists_every_instance_sorted_by_host():
    hosts = [{"host": "c2", "routers": ["r1", "r2"]}, {"host": "c1", "routers": ["r1"]},
             {"host": "n1", "routers": []}]
    routers = [{"id": "r1", "name": "demo"}, {"id": "r2", "name": ""}]
    assert router_placement(hosts, routers, None) == [
        ("c1", "r1", "demo"), ("c2", "r1", "demo"), ("c2", "r2", "")]
    assert router_placement(hosts, routers, "c1") == [("c1", "r1", "demo")]
    assert router_placement(hosts, routers, "n1") == []


def test_format_table_aligns_columns():
    text = format_table(("A", "LONG HEADER"), [("x", 1), ("yyyy", None)])
    lines = text.splitlines()
    assert lines[0] == "A     LONG HEADER"
    assert lines[1] == "----  -----------"
    assert lines[2] == "x     1"
    assert lines[3] == "yyyy"


@pytest.mark.parametrize("argv", [
    ["hosts"], ["routers", "--host", "h"], ["flows", "h", "--bridge", "br-tun", "--explain"],
    ["lab", "up", "--computes", "3", "--name", "x"], ["lab", "vm", "add", "v", "--network", "n",
                                                      "--host", "h"],
    ["lab", "exec", "compute-1", "--", "ip", "link"], ["trace", "a", "b", "--verify"],
])
def test_pinned_command_lines_parse(argv):
    args = build_parser().parse_args(argv)
    assert callable(args.handler)


def test_unreachable_server_is_a_clear_error_not_a_traceback(capsys):
    code = main(["--server", "http://127.0.0.1:1", "hosts"])
    assert code != 0
    err = capsys.readouterr().err
    assert err.startswith("dvr: ") and "Traceback" not in err


def test_a_closed_pipe_ends_the_command_quietly():
    """`dvr flows HOST --explain | head`: the reader leaves early; no error, no traceback."""
    import subprocess
    import sys

    code = (
        "import sys, dvr.cli.main as m, dvr.cli.ops as ops\n"
        "def flood(args):\n"
        "    for i in range(100000):\n"
        "        print('line', i)\n"
        "ops.cmd_hosts = flood\n"
        "sys.exit(m.main(['--server', 'http://127.0.0.1:1', 'hosts']))\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    writer.stdout.readline()
    writer.stdout.close()  # the reader goes away after one line
    _, err = writer.communicate(timeout=30)
    assert writer.returncode == 141
    assert err == b""
