import pytest

from dvr.agent.config import AgentConfig, build_parser, config_from_args


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


# --- the agent's token: TOML token / token_file, --token-file, $DVR_TOKEN; never a flag value


def test_token_comes_from_toml_token_file_flag_or_environment(tmp_path):
    from dvr.agent.config import config_from_args

    def config(argv, environ=None):
        return config_from_args(build_parser().parse_args(argv), environ or {})

    base = ["--host", "h", "--server", "unix:/s"]
    assert config(base).token is None
    assert config(base, {"DVR_TOKEN": "from-env"}).token == "from-env"
    token_file = tmp_path / "token"
    token_file.write_text("dvrh_from-file\n")
    assert config([*base, "--token-file", str(token_file)],
                  {"DVR_TOKEN": "from-env"}).token == "dvrh_from-file"
    toml = tmp_path / "agent.toml"
    toml.write_text('host = "h"\nserver = "unix:/s"\ntoken = "dvrh_from-toml"\n')
    assert config(["--config", str(toml)], {"DVR_TOKEN": "from-env"}).token == "dvrh_from-toml"
    # the flag overrides the file's token
    assert config(["--config", str(toml), "--token-file", str(token_file)]).token == (
        "dvrh_from-file")
    toml.write_text(f'host = "h"\nserver = "unix:/s"\ntoken_file = "{token_file}"\n')
    assert config(["--config", str(toml)]).token == "dvrh_from-file"


def test_a_token_and_a_token_file_in_one_file_or_an_empty_token_file_are_refused(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("dvrh_x")
    toml = tmp_path / "agent.toml"
    toml.write_text(f'host = "h"\nserver = "unix:/s"\ntoken = "t"\ntoken_file = "{token_file}"\n')
    with pytest.raises(ValueError, match="not both"):
        parse(["--config", str(toml)])
    token_file.write_text("\n")
    with pytest.raises(ValueError, match="one token"):
        parse(["--host", "h", "--server", "unix:/s", "--token-file", str(token_file)])
    with pytest.raises(FileNotFoundError):
        parse(["--host", "h", "--server", "unix:/s", "--token-file", str(tmp_path / "none")])


def test_a_token_on_the_command_line_is_not_accepted(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--host", "h", "--server", "unix:/s", "--token", "secret"])


def test_the_token_stays_out_of_the_config_repr(tmp_path):
    toml = tmp_path / "agent.toml"
    toml.write_text('host = "h"\nserver = "https://dvr.example:9696"\ntoken = "dvrh_secret"\n'
                    'ca_file = "/etc/dvr/ca.pem"\n')
    cfg = parse(["--config", str(toml)])
    assert cfg.token == "dvrh_secret" and cfg.ca_file == "/etc/dvr/ca.pem"
    assert "dvrh_secret" not in repr(cfg)


def test_credential_toml_is_what_the_agent_reads(tmp_path):
    from dvr.agent.config import credential_toml

    text = credential_toml('odd "host"\\', "dvrh_" + "A" * 43)
    assert text.splitlines()[1] == f'token = "dvrh_{"A" * 43}"'
    toml = tmp_path / "agent.toml"
    toml.write_text(text)
    cfg = parse(["--config", str(toml), "--server", "unix:/s"])
    assert (cfg.host, cfg.token) == ('odd "host"\\', "dvrh_" + "A" * 43)


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


def test_an_old_config_with_resync_interval_still_loads_with_a_deprecation_line(tmp_path, caplog):
    import logging

    from dvr.agent.config import build_parser, config_from_args

    path = tmp_path / "agent.toml"
    path.write_text('host = "h"\nserver = "unix:/run/dvr.sock"\nresync_interval = 60\n')
    with caplog.at_level(logging.WARNING, logger="dvr.agent"):
        config = config_from_args(build_parser().parse_args(["--config", str(path)]), {})
        config_from_args(build_parser().parse_args(
            ["--host", "h", "--server", "unix:/s", "--resync-interval", "30"]), {})
    assert config.host == "h" and not hasattr(config, "resync_interval")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("'resync_interval' is deprecated" in m for m in messages)


@pytest.mark.parametrize("name", ["flow_mirror", "openflow_connection", "fast_phase"])
def test_on_off_settings_from_the_flag_or_toml(tmp_path, name):
    flag = "--" + name.replace("_", "-")
    base = ["--host", "h", "--server", "unix:/s"]
    assert getattr(parse(base), name) is True
    assert getattr(parse([*base, flag, "off"]), name) is False
    f = tmp_path / "agent.toml"
    f.write_text(f'host = "h"\nserver = "unix:/s"\n{name} = false\n')
    assert getattr(parse(["--config", str(f)]), name) is False
    assert getattr(parse(["--config", str(f), flag, "on"]), name) is True
    f.write_text(f'host = "h"\nserver = "unix:/s"\n{name} = "no"\n')
    with pytest.raises(ValueError, match=name):
        parse(["--config", str(f)])


def test_several_servers_from_repeated_flags_or_toml_and_server_is_the_first(tmp_path):
    cfg = parse(["--host", "h", "--server", "http://a:9696", "--server", "unix:/b.sock"])
    assert cfg.servers == ("http://a:9696", "unix:/b.sock") and cfg.server == "http://a:9696"
    one = tmp_path / "one.toml"
    one.write_text('host = "h"\nserver = "http://a:9696"\n')
    assert parse(["--config", str(one)]).servers == ("http://a:9696",)
    many = tmp_path / "many.toml"
    many.write_text('host = "h"\nservers = ["http://a:9696", "http://b:9696"]\n')
    assert parse(["--config", str(many)]).servers == ("http://a:9696", "http://b:9696")
    # flags override the file, whichever key it uses
    assert parse(["--config", str(one), "--server", "http://c:1"]).servers == ("http://c:1",)
    assert parse(["--config", str(many), "--server", "http://c:1"]).server == "http://c:1"


@pytest.mark.parametrize("toml, message", [
    ('server = "http://a"\nservers = ["http://b"]\n', "not both"),
    ('servers = "http://a"\n', "list of server URLs"),
    ('servers = ["http://a", "ftp://b"]\n', "server must be"),
    ('servers = ["http://a", "http://a"]\n', "listed twice"),
    ('servers = []\n', "--server"),
])
def test_bad_server_lists_are_rejected(tmp_path, toml, message):
    f = tmp_path / "agent.toml"
    f.write_text('host = "h"\n' + toml)
    with pytest.raises(ValueError, match=message):
        parse(["--config", str(f)])


def test_agent_config_built_in_code_keeps_server_and_servers_consistent():
    assert AgentConfig(host="h", server="http://a").servers == ("http://a",)
    assert AgentConfig(host="h", servers=("http://a", "http://b")).server == "http://a"
    with pytest.raises(ValueError, match="first of servers"):
        AgentConfig(host="h", server="http://b", servers=("http://a", "http://b"))


@pytest.mark.parametrize(("setting", "value"), [
    *(("view_patience", v) for v in (0, -1, 3601, float("nan"), "50", True)),
    *(("full_phase_grace", v) for v in (-0.01, 1.5, float("nan"), "0.02", True, None)),
])
def test_a_setting_that_is_not_a_number_of_seconds_in_its_range_is_refused(setting, value):
    with pytest.raises(ValueError, match=setting):
        AgentConfig(host="h", server="http://a", **{setting: value}).validate()


def test_the_view_patience_can_be_set_in_the_config_file(tmp_path):
    f = tmp_path / "agent.toml"
    f.write_text('host = "h"\nserver = "http://a"\nview_patience = 20.5\n')
    assert parse(["--config", str(f)]).view_patience == 20.5



def test_the_full_phase_grace_is_set_by_file_or_flag_and_zero_turns_it_off(tmp_path):
    f = tmp_path / "agent.toml"
    f.write_text('host = "h"\nserver = "http://a"\nfull_phase_grace = 0.05\n')
    assert parse(["--config", str(f)]).full_phase_grace == 0.05
    assert parse(["--config", str(f), "--full-phase-grace", "0"]).full_phase_grace == 0
    assert parse(["--host", "h", "--server", "http://a"]).full_phase_grace == 0.02
