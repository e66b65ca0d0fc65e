"""examples/deploy/nginx.conf, run by a real nginx in front of two rtm-serve instances that
share channels through the real Redis, with the checks of tests/test_deploy_haproxy.py: every
sockjs-client transport (in Node and in Chromium) and raw WebSockets deliver every message
exactly once, the clients outlast the proxy's timeouts thanks to the heartbeats, each SockJS
session stays on one instance, both instances serve sessions, and the instances learn the
client's address from X-Forwarded-For.  nginx must also log no error of its own.

nginx runs in the foreground (``-g 'daemon off;'``) with the rendered file, its pid, logs and
temporary directories in the test's directory.  Started as root (as here, in a container), its
workers would switch to the file's ``user www-data``, who cannot write in the test's directory:
the rendered file says ``user root`` then (as another user, nginx ignores the line).
"""
import os
import re
import subprocess
from contextlib import ExitStack

import pytest

from conftest import free_port, need, run_process
from test_deploy_haproxy import (DEPLOY_DIR, PROXY_TIMEOUT, Deployment, check_browser_clients,
                                 check_forwarded_for, check_node_clients, read, render, sbin,
                                 start_instances)
from test_deploy_haproxy import check_page  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@pytest.fixture(scope="module")
def nginx_deployment(tmp_path_factory):
    """examples/deploy/nginx.conf, rendered, in front of two instances."""
    nginx = sbin("nginx")
    need(nginx is not None, "nginx is not installed (apt-get install nginx-light)")
    tmp_path = tmp_path_factory.mktemp("nginx")
    with ExitStack() as stack:
        instances = start_instances(stack, tmp_path)
        front_port = free_port()
        prefix = tmp_path / "prefix"
        prefix.mkdir()
        timeout = "%ds" % PROXY_TIMEOUT
        temp_paths = "".join("    %s_temp_path %s;\n" % (name, prefix / name)
                             for name in TEMP_PATHS)
        config = render(read(os.path.join(DEPLOY_DIR, "nginx.conf")), [
            ("user www-data;", "user root;" if os.geteuid() == 0 else ""),
            # The sandbox's hard limit of descriptors may be lower (nginx would only warn).
            ("worker_rlimit_nofile 100000;", "worker_rlimit_nofile 4096;"),
            ("worker_connections 40000;", "worker_connections 1024;"),
            ("pid /run/nginx.pid;", "pid %s;" % (prefix / "nginx.pid")),
            ("error_log /var/log/nginx/error.log warn;", "error_log stderr info;"),
            ("access_log /var/log/nginx/access.log;",
             "access_log %s;\n%s" % (prefix / "access.log", temp_paths)),
            ("listen 8000;", "listen 127.0.0.1:%d;" % front_port),
            ("127.0.0.1:9000", "127.0.0.1:%d" % instances[0].port),
            ("127.0.0.1:9010", "127.0.0.1:%d" % instances[1].port),
            ("proxy_read_timeout 60s;", "proxy_read_timeout %s;" % timeout),
            ("proxy_send_timeout 60s;", "proxy_send_timeout %s;" % timeout),
            ("    send_timeout 60s;", "    send_timeout %s;" % timeout),
        ])
        path = tmp_path / "nginx.conf"
        path.write_text(config)
        command = [nginx, "-p", str(prefix), "-c", str(path), "-e", "stderr",
                   "-g", "daemon off;"]
        checked = subprocess.run(command[:-2] + ["-t"], capture_output=True, text=True,
                                 timeout=20)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        proxy = stack.enter_context(run_process(command, front_port, tmp_path, name="nginx"))
        yield Deployment(front_port, instances, proxy)


def proxy_errors(deployment: Deployment):
    """nginx's own complaints: a timeout, a refused or reset upstream..."""
    return [line for line in deployment.proxy.log().splitlines()
            if re.search(r"\[(error|crit|alert|emerg)\]", line)]


def test_nginx_node_clients(nginx_deployment):
    check_node_clients(nginx_deployment)
    assert not proxy_errors(nginx_deployment), "\n".join(proxy_errors(nginx_deployment)[-20:])


def test_nginx_forwarded_for(nginx_deployment):
    check_forwarded_for(nginx_deployment)


def test_nginx_browser_clients(nginx_deployment, browser, check_page):  # noqa: F811
    check_browser_clients(nginx_deployment, browser, check_page)
    assert not proxy_errors(nginx_deployment), "\n".join(proxy_errors(nginx_deployment)[-20:])
