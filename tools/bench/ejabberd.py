"""A throwaway local ejabberd (Debian's package) for `./cluster bench --vs ejabberd`.

c2s on loopback without TLS, no shapers, Mnesia storage, salted SCRAM-SHA-256 credentials (the
same kind of credentials the cluster stores), roster versioning; users are created through its
HTTP API (mod_http_api, loopback only). Everything lives in a temporary directory owned by the
`ejabberd` system user, and the node is stopped at the end.
"""
import concurrent.futures
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

from local_cluster import free_port  # the ports every local server takes (path set by bench.py)

CONFIG = """\
hosts:
  - {domain}
loglevel: warning
listen:
  -
    port: {c2s_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: none
    access: c2s
    starttls: false
    backlog: 4096
  -
    port: {api_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
negotiation_timeout: 600
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256
shaper: {{}}
shaper_rules:
  max_user_sessions: 10
  c2s_shaper: none
  max_user_offline_messages: 100000
acl:
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  c2s:
    allow: all
api_permissions:
  "bench":
    from:
      - mod_http_api
    who:
      ip: 127.0.0.1/8
    what:
      - "register"
modules:
  mod_roster:
    versioning: true
  mod_disco: {{}}
  mod_ping: {{}}
"""


def installed():
    return shutil.which("ejabberdctl") is not None


def ensure_installed():
    if installed():
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                           "ejabberd"], check=True, env={**os.environ,
                                                         "DEBIAN_FRONTEND": "noninteractive"})


class Ejabberd:
    def __init__(self, domain="localhost"):
        self.domain = domain
        self.dir = tempfile.mkdtemp(prefix="xc-bench-ejabberd-")
        self.c2s_port = free_port()
        self.api_port = free_port()
        self.node = f"xcbench{os.getpid()}@localhost"
        self.proc = None

    def _as_ejabberd(self, *args):
        # ejabberdctl runs the node as the `ejabberd` user; started by root it switches with su,
        # which drops the environment that points it at our config, so start it as that user
        # (whose session starts with PAM's default of 1024 open files: raise it to the hard limit,
        # or the node stops accepting once that many clients are connected).
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        base = ["sh", "-c", f'ulimit -n {files} && exec "$@"', "ejabberdctl",
                "ejabberdctl", "--config-dir", self.dir,
                "--config", os.path.join(self.dir, "ejabberd.yml"),
                "--ctl-config", os.path.join(self.dir, "ejabberdctl.cfg"),
                "--spool", os.path.join(self.dir, "db"), "--logs", os.path.join(self.dir, "logs"),
                "--node", self.node, *args]
        return (["runuser", "-u", "ejabberd", "--"] if os.geteuid() == 0 else []) + base

    def start(self):
        os.makedirs(os.path.join(self.dir, "db"))
        os.makedirs(os.path.join(self.dir, "logs"))
        with open(os.path.join(self.dir, "ejabberd.yml"), "w") as f:
            f.write(CONFIG.format(domain=self.domain, c2s_port=self.c2s_port,
                                  api_port=self.api_port))
        open(os.path.join(self.dir, "ejabberdctl.cfg"), "w").close()
        if os.path.exists("/etc/ejabberd/inetrc"):
            shutil.copy("/etc/ejabberd/inetrc", self.dir)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "ejabberd:ejabberd", self.dir], check=True)
        log = open(os.path.join(self.dir, "foreground.log"), "ab")
        self.proc = subprocess.Popen(self._as_ejabberd("foreground"), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.dir)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ejabberd exited; see {self.dir}/foreground.log")
            try:
                with socket.create_connection(("127.0.0.1", self.c2s_port), timeout=0.5):
                    with socket.create_connection(("127.0.0.1", self.api_port), timeout=0.5):
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("ejabberd did not start within 60 s")

    def beam_pid(self):
        """The Erlang VM process (the server's memory and CPU)."""
        out = subprocess.run(["pgrep", "-f", f"sname {self.node}"], capture_output=True,
                             text=True).stdout.split()
        return int(out[0]) if out else None

    def _register(self, user, password):
        body = json.dumps({"user": user, "host": self.domain, "password": password}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/api/register", data=body,
                                     method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def add_users(self, prefix, count, password):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: self._register(f"{prefix}{i}", password),
                          range(1, count + 1)))

    def stop(self):
        if self.proc is None:
            return
        subprocess.run(self._as_ejabberd("stop"), capture_output=True, timeout=60)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pid = self.beam_pid()
            if pid:
                os.kill(pid, 9)
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
