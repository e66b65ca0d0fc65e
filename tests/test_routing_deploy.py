"""Any process serves any request behind a balancer with no stickiness: two rtm-serve instances
sharing Redis behind examples/deploy/haproxy-roundrobin.cfg and behind
examples/deploy/nginx-roundrobin.conf (each request to the next instance), and sockjs-client
1.6.1 in Chromium forced to each HTTP transport in turn: 200 messages echoed in order, none lost,
none twice.  Both instances served requests of the same session (the routing was used).
"""
import os
import re
import subprocess
from contextlib import ExitStack
from typing import Dict, List, Set

import pytest

from conftest import REDIS_URL, free_port, need, redis_available, rtm_serve_command, run_process
from test_deploy_haproxy import DEPLOY_DIR, read, render, sbin
from test_deploy_nginx import TEMP_PATHS
from test_routing_browser import HTTP_TRANSPORTS, echo_in_browser
from test_sockjs_client_browser import static_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

#: "POST /echo/123/<session>/xhr HTTP/1.1" in an instance's access log (--log-level debug).
SESSION_REQUEST = re.compile(r'"[A-Z]+ /(?:echo|close)/[^/ ]+/([^/ ?]+)/([a-z_]+)[ ?]')


def start_instances(stack: ExitStack, tmp_path, static_url: str) -> List:
    need(redis_available(), "Redis at 127.0.0.1:6379 is needed")
    instances = []
    for index in range(2):
        port = free_port()
        command = rtm_serve_command("examples.sockjs_endpoints:app", port, "--broker", REDIS_URL,
                                    "--sockjs-url", static_url + "/sockjs.min.js",
                                    "--api", "false", "--log-level", "debug")
        instances.append(stack.enter_context(run_process(command, port, tmp_path,
                                                         name="rtm%d" % (index + 1))))
    return instances


class Front:
    def __init__(self, port: int, instances: List, proxy) -> None:
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.instances = instances
        self.proxy = proxy

    def log(self) -> str:
        return self.proxy.log()[-3000:] + "".join(
            "\ninstance log:\n" + instance.log()[-3000:] for instance in self.instances)

    def sessions_on(self, instance) -> Set[str]:
        return {session for session, _ in SESSION_REQUEST.findall(instance.log())}


@pytest.fixture(scope="module")
def haproxy_front(tmp_path_factory, static_server):  # noqa: F811
    haproxy = sbin("haproxy")
    need(haproxy is not None, "haproxy is not installed (apt-get install haproxy)")
    tmp_path = tmp_path_factory.mktemp("haproxy-rr")
    with ExitStack() as stack:
        instances = start_instances(stack, tmp_path, static_server.url)
        port = free_port()
        config = render(read(os.path.join(DEPLOY_DIR, "haproxy-roundrobin.cfg")), [
            ("bind :8000", "bind 127.0.0.1:%d" % port),
            ("maxconn 50000\n\ndefaults", "maxconn 4000\n\ndefaults"),
            ("uri /pubsub/info", "uri /echo/info"),
            ("127.0.0.1:9000", "127.0.0.1:%d" % instances[0].port),
            ("127.0.0.1:9010", "127.0.0.1:%d" % instances[1].port),
        ])
        path = tmp_path / "haproxy.cfg"
        path.write_text(config)
        checked = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True,
                                 text=True, timeout=20)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        proxy = stack.enter_context(run_process([haproxy, "-f", str(path), "-db"], port,
                                                tmp_path, name="haproxy"))
        yield Front(port, instances, proxy)


@pytest.fixture(scope="module")
def nginx_front(tmp_path_factory, static_server):  # noqa: F811
    nginx = sbin("nginx")
    need(nginx is not None, "nginx is not installed (apt-get install nginx-light)")
    tmp_path = tmp_path_factory.mktemp("nginx-rr")
    with ExitStack() as stack:
        instances = start_instances(stack, tmp_path, static_server.url)
        port = free_port()
        prefix = tmp_path / "prefix"
        prefix.mkdir()
        temp_paths = "".join("    %s_temp_path %s;\n" % (name, prefix / name)
                             for name in TEMP_PATHS)
        config = render(read(os.path.join(DEPLOY_DIR, "nginx-roundrobin.conf")), [
            ("user www-data;", "user root;" if os.geteuid() == 0 else ""),
            ("worker_rlimit_nofile 100000;", "worker_rlimit_nofile 4096;"),
            ("worker_connections 40000;", "worker_connections 1024;"),
            ("pid /run/nginx.pid;", "pid %s;" % (prefix / "nginx.pid")),
            ("error_log /var/log/nginx/error.log warn;", "error_log stderr info;"),
            ("access_log /var/log/nginx/access.log;",
             "access_log %s;\n%s" % (prefix / "access.log", temp_paths)),
            ("listen 8000;", "listen 127.0.0.1:%d;" % port),
            ("location /pubsub/ {", "location / {"),  # the test app's endpoints: /echo, /close
            ("127.0.0.1:9000", "127.0.0.1:%d" % instances[0].port),
            ("127.0.0.1:9010", "127.0.0.1:%d" % instances[1].port),
        ])
        path = tmp_path / "nginx.conf"
        path.write_text(config)
        command = [nginx, "-p", str(prefix), "-c", str(path), "-e", "stderr",
                   "-g", "daemon off;"]
        checked = subprocess.run(command[:-2] + ["-t"], capture_output=True, text=True,
                                 timeout=20)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        proxy = stack.enter_context(run_process(command, port, tmp_path, name="nginx"))
        yield Front(port, instances, proxy)


def check_front(browser, static_server, front: Front, transport: str) -> None:  # noqa: F811
    sessions = echo_in_browser(browser, static_server, front, transport)
    served: Dict[str, int] = {session: sum(session in front.sessions_on(instance)
                                           for instance in front.instances)
                              for session in sessions}
    # Round robin: the requests of a session alternate between the two instances.
    assert max(served.values()) == 2, "sessions %s on instances %s%s" % (
        sessions, served, front.log())


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_haproxy_round_robin(browser, static_server, haproxy_front, transport):  # noqa: F811
    check_front(browser, static_server, haproxy_front, transport)


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_nginx_round_robin(browser, static_server, nginx_front, transport):  # noqa: F811
    check_front(browser, static_server, nginx_front, transport)
