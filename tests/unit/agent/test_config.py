import pytest

from dvr.agent.config import build_parser, config_from_args


def parse(argv):
    return config_from_args(build_parser().parse_args(argv))


def test_flags_build_config_with_defaults():
    cfg = parse(["--host", "compute-1", "--server", "unix:/tmp/s.sock", "--mode", "dvr_snat"])
    assert (cfg.host, cfg.server, cfg.mode) == ("compute-1", "unix:/tmp/s.sock", "dvr_snat")
    assert (cfg.integration_bridge, cfg.tunnel_bridge, cfg.datapath) == ("br-int", "br-tun",
                                                                        "netdev")
    assert cfg.availability_zone == "nova"
    zoned = parse(["--host", "h", "--server", "unix:/s", "--availability-zone", "az-2"])
    assert zoned.availability_zone == "az-2"


def test_toml_file_is_read_and_flags_override_it(tmp_path):
    f = tmp_path / "agent.toml"
    f.write_text('[agent]\nhost = "compute-9"\nserver = "http://127.0.0.1:9696"\n'
                 'local-ip = "198.18.0.9"\ntunnel-bridge = "br-tun2"\n')
    cfg = parse(["--config", str(f), "--host", "compute-2"])
    assert cfg.host == "compute-2"
    assert cfg.local_ip == "198.18.0.9"
    assert cfg.tunnel_bridge == "br-tun2"


def test_unknown_toml_key_is_rejected(tmp_path):
    f = tmp_path / "agent.toml"
    f.write_text('host = "h"\nserver = "http://x"\nbogus = 1\n')
    with pytest.raises(ValueError, match="bogus"):
        parse(["--config", str(f)])


@pytest.mark.parametrize("argv, message", [
    (["--server", "http://x"], "--host"),
    (["--host", "h"], "--server"),
    (["--host", "h", "--server", "ftp://x"], "server must be"),
])
def test_bad_settings_are_rejected(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(argv)


def test_bad_mode_is_rejected_by_the_parser():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--host", "h", "--server", "http://x", "--mode", "bogus"])


def test_bridge_mappings_from_repeated_flags_comma_lists_and_toml(tmp_path):
    base = ["--host", "h", "--server", "unix:/s"]
    assert parse(base).parsed_bridge_mappings() == ()
    cfg = parse([*base, "--bridge-mappings", "public:br-ex,prov:br-prov",
                 "--bridge-mappings", "other:br-o"])
    assert cfg.parsed_bridge_mappings() == (("public", "br-ex"), ("prov", "br-prov"),
                                            ("other", "br-o"))
    f = tmp_path / "agent.toml"
    f.write_text('host = "h"\nserver = "unix:/s"\nbridge_mappings = ["public:br-ex"]\n')
    assert parse(["--config", str(f)]).parsed_bridge_mappings() == (("public", "br-ex"),)


@pytest.mark.parametrize("mapping", ["public", "public:", ":br-ex", "public:br-int",
                                     "a:br-x,a:br-y"])
def test_bad_bridge_mappings_are_rejected(mapping):
    with pytest.raises(ValueError):
        parse(["--host", "h", "--server", "unix:/s", "--bridge-mappings", mapping])


def test_east_west_from_the_flag_or_toml(tmp_path):
    base = ["--host", "h", "--server", "unix:/s"]
    assert parse(base).east_west == "openflow"
    assert parse([*base, "--east-west", "namespace"]).east_west == "namespace"
    f = tmp_path / "agent.toml"
    f.write_text('host = "h"\nserver = "unix:/s"\neast_west = "namespace"\n')
    assert parse(["--config", str(f)]).east_west == "namespace"
    f.write_text('host = "h"\nserver = "unix:/s"\neast_west = "kernel"\n')
    with pytest.raises(ValueError, match="east_west"):
        parse(["--config", str(f)])
