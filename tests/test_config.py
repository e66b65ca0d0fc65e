"""The one config object: keywords, flags, environment and the docs table come from it."""
import argparse
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
