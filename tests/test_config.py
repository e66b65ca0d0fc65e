"""The one config object: keywords, flags, environment and the docs table come from it."""
import argparse
import dataclasses
import os
import subprocess
import sys

import pytest

from realtimemagic import config
from realtimemagic.exceptions import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_match_the_spec():
    settings = config.Settings()
    assert (settings.host, settings.port, settings.prefix) == ("127.0.0.1", 9000, "/pubsub")
    assert settings.heartbeat_interval == 25.0 and settings.disconnect_delay == 5.0
    assert settings.response_limit == 128 * 1024 and settings.max_message_size == 64 * 1024


def test_environment_then_keywords():
    settings = config.build({"port": 1234}, environ={"RTM_PORT": "99", "RTM_PREFIX": "/x",
                                                     "RTM_COOKIE_NEEDED": "yes"})
    assert settings.port == 1234 and settings.prefix == "/x" and settings.cookie_needed is True


def test_bad_values_are_refused_clearly():
    with pytest.raises(ConfigError, match="RTM_PORT|port expects"):
        config.build(environ={"RTM_PORT": "eleven"})
    with pytest.raises(ConfigError, match="unknown setting"):
        config.build({"no_such_thing": 1}, environ={})
    with pytest.raises(ConfigError, match="must be positive"):
        config.build({"heartbeat_interval": 0}, environ={})


def test_local_is_the_seed_shortcut_for_host():
    assert config.build({"local": False}, environ={}).host == "0.0.0.0"
    assert config.build({"local": True}, environ={}).host == "127.0.0.1"


def test_every_setting_is_a_cli_flag():
    parser = argparse.ArgumentParser()
    config.add_cli_arguments(parser)
    arguments = parser.parse_args(["--heartbeat-interval", "2.5", "--websocket-enabled", "no"])
    assert config.from_cli(arguments) == {"heartbeat_interval": 2.5, "websocket_enabled": False}
    flags = {action.dest for action in parser._actions}
    assert set(config.field_names()) <= flags


def test_settings_doc_is_generated_from_the_config():
    generated = subprocess.run([sys.executable, "-m", "realtimemagic.config"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    with open(os.path.join(ROOT, "docs", "settings.md"), encoding="utf-8") as page:
        assert page.read() == generated, "run: make docs"


# Every setting: (a good text, the value it gives, a bad text).  A setting added to
# config.Settings without a row here fails test_every_setting_has_a_row.
ROWS = {
    "host": ("0.0.0.0", "0.0.0.0", "local host"),
    "port": ("8080", 8080, "99999"),
    "prefix": ("/rt", "/rt", "rt"),
    "local": ("false", False, "maybe"),
    "broker": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", "foo"),
    "broker_queue_size": ("5", 5, "0"),
    "broker_reconnect_min": ("0.25", 0.25, "-1"),
    "broker_reconnect_max": ("60", 60.0, "0"),
    "routing": ("false", False, "maybe"),
    "routing_ttl": ("4", 4.0, "0"),
    "broker_sequence_channels": ("1000", 1000, "0"),
    "broker_health_interval": ("2.5", 2.5, "soon"),
    "heartbeat_interval": ("10", 10.0, "0"),
    "disconnect_delay": ("3", 3.0, "nan"),
    "response_limit": ("4096", 4096, "4k"),
    "max_message_size": ("1024", 1024, "262145"),  # over max_frame_size
    "max_frame_size": ("1048576", 1048576, "1024"),  # under max_message_size
    "outbox_max_frames": ("10", 10, "0"),
    "outbox_max_bytes": ("1000", 1000, "1e3"),
    "max_subscriptions": ("5", 5, "-1"),
    "rate_limit": ("0.5", 0.5, "0"),
    "hook_pool_size": ("10", 10, "0"),
    "max_pending_messages": ("1", 1, "0"),
    "send_timeout": ("1.5", 1.5, "0"),
    "header_timeout": ("3", 3.0, "0"),
    "body_timeout": ("2.5", 2.5, "-1"),
    "websocket_enabled": ("off", False, "maybe"),
    "cookie_needed": ("yes", True, "2"),
    "sockjs_url": ("https://cdn.example/sockjs.min.js", "https://cdn.example/sockjs.min.js",
                   "cdn.example/sockjs.min.js"),
    "namespaces": ('{"chat": {"presence": true}}', '{"chat": {"presence": true}}', "[1]"),
    "max_connections": ("100", 100, "0"),
    "history_max_channels": ("500", 500, "0"),
    "history_max_bytes": ("1048576", 1048576, "-5"),
    "allowed_origins": ("https://a.example, http://127.0.0.1:8000",
                        "https://a.example, http://127.0.0.1:8000", "example.com"),
    "shutdown_timeout": ("0", 0.0, "-1"),
    "api": ("false", False, "nope"),
    "api_host": ("::1", "::1", ""),
    "api_port": ("0", 0, "-2"),
    "api_key": ("s3cret-key", "s3cret-key", "two words"),
    "demo": ("1", True, "maybe"),
    "sweep_interval": ("0.5", 0.5, "0"),
    "maintenance_interval": ("1.5", 1.5, "0"),
}


def test_every_setting_has_a_row():
    assert sorted(ROWS) == sorted(f.name for f in dataclasses.fields(config.Settings))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("name", sorted(ROWS))
def test_good_value_through_flag_environment_and_keyword(name):
    from realtimemagic.cli import parser
    from realtimemagic.magic import RealTimeMagic
    text, value, _ = ROWS[name]
    arguments = parser().parse_args([flag(name), text])
    through_flag = config.build(config.from_cli(arguments), environ={})
    through_environment = config.build(environ={config.env_name(name): text})
    through_keyword = RealTimeMagic(**{name: value}).settings
    for settings in (through_flag, through_environment, through_keyword):
        assert getattr(settings, name) == value
        assert type(getattr(settings, name)) is type(value)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_value_through_environment_and_keyword(name):
    from realtimemagic.magic import RealTimeMagic
    _, _, bad = ROWS[name]
    with pytest.raises(ConfigError) as refused:
        config.build(environ={config.env_name(name): bad})
    assert config.env_name(name) in str(refused.value) or name in str(refused.value)
    # As a keyword the text itself is wrong: the wrong type, or a str setting's wrong value.
    with pytest.raises(ConfigError, match=name):
        RealTimeMagic(**{name: bad})


@pytest.mark.parametrize("name", sorted(ROWS))
def test_bad_value_through_a_flag_of_rtm_serve(name):
    """rtm-serve itself: exit status 2, one line naming the setting, no traceback."""
    result = subprocess.run([sys.executable, "-m", "realtimemagic", flag(name), ROWS[name][2]],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("rtm-serve: "), result
    assert flag(name) in result.stderr or name in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_bools_take_the_usual_words():
    f = next(f for f in config.fields() if f.name == "local")
    for text in ("true", "TRUE", "1", "yes", "on", " On "):
        assert config.parse_value(f, text) is True
    for text in ("false", "0", "no", "off", "False"):
        assert config.parse_value(f, text) is False
    with pytest.raises(ConfigError, match="true or false"):
        config.parse_value(f, "y")


def test_local_false_from_the_environment_binds_every_interface():
    # The seed's RTM_LOCAL=false: a bool, not the string 'false' (which is true).
    settings = config.build(environ={"RTM_LOCAL": "false"})
    assert settings.local is False and settings.host == "0.0.0.0"
    assert config.build(environ={"RTM_LOCAL": "true", "RTM_HOST": "0.0.0.0"}).host == "127.0.0.1"


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="max_message_size .* must not exceed max_frame_size"):
        config.build({"max_message_size": 2048, "max_frame_size": 1024}, environ={})
    assert config.build({"max_message_size": 1024, "max_frame_size": 1024}, environ={})
    for origins in ("example.com", "https://", "https://a.example/path", "*.example.com",
                    "https://a.example, b.example"):
        with pytest.raises(ConfigError, match="not an origin"):
            config.build({"allowed_origins": origins}, environ={})
    for origins in ("*", "https://a.example", "http://127.0.0.1:8000/", "https://a, *"):
        assert config.build({"allowed_origins": origins}, environ={})


def test_an_unknown_keyword_names_the_closest_setting():
    from realtimemagic.magic import RealTimeMagic
    with pytest.raises(ConfigError, match=r"unknown setting 'prot' \(did you mean 'port'\?\)"):
        RealTimeMagic(prot=9000)
    with pytest.raises(ConfigError, match="did you mean 'heartbeat_interval'"):
        RealTimeMagic(heartbeat=3)
    with pytest.raises(ConfigError, match=r"unknown setting 'zzz'$"):
        RealTimeMagic(zzz=1)
    rtm = RealTimeMagic()
    with pytest.raises(ConfigError, match="did you mean 'max_connections'"):
        rtm.configure(max_conections=5)
    with pytest.raises(ConfigError, match="port"):
        rtm.configure(port="9000")
