#!/usr/bin/env python3
"""Starts and stops a local cluster: Redis + roster service + presence router + N gateways.

Used by `./cluster up|down` and by the end-to-end tests, so both run the same processes.

    local_cluster.py up   --bin-dir DIR --state-dir DIR [--domains a,b] [--gateways 2]
    local_cluster.py down --state-dir DIR
"""
import argparse
import fcntl
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time


# Ports for local clusters come from below the kernel's ephemeral range, so that no outgoing
# connection (of this cluster or of another test's) takes one between its choice and its bind, and
# each chosen port is claimed with a lock file held for the life of this process, so that two test
# processes starting clusters at the same time never pick the same port.
_PORT_LOCK_DIR = os.path.join(os.environ.get("XC_TMP") or "/tmp", "xc-ports")
_port_claims = []  # open lock file descriptors: each one is a claim while it is open


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _port_pool(span=0):
    """[lo, hi) of candidate ports p for which p and p + span are outside the ephemeral range."""
    eph_lo, eph_hi = _ephemeral_range()
    if eph_lo - span > 12000:
        return 10000, eph_lo - span
    return eph_hi + 1, 65536 - span  # an unusual kernel setting: above the range instead


def _bind_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(span=0):
    """A loopback port that nothing is bound to and no other local cluster has claimed (with
    `span`, port + span is free too: a Redis Cluster node's bus port)."""
    os.makedirs(_PORT_LOCK_DIR, exist_ok=True)
    lo, hi = _port_pool(span)
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randrange(lo, hi)
        # A port this process holds is refused too: its lock is on another open file.
        fd = os.open(os.path.join(_PORT_LOCK_DIR, f"{port}.lock"), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if _bind_free(port) and (span == 0 or _bind_free(port + span)):
            _port_claims.append(fd)
            return port
        os.close(fd)  # closing releases the lock
    raise RuntimeError(f"no free loopback port in [{lo}, {hi})")


def _listening_inodes(port):
    """Socket inodes of every TCP listener on `port` (any address), from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    return inodes


def _owns_socket(pid, inodes):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    except OSError:
        return False
    return False


def wait_for_port(port, proc, timeout=20.0, what="process"):
    """Waits until `port` accepts connections; with `proc`, until it is `proc` that listens there
    (a connection accepted by some other process is an error, not readiness)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if proc is None or _owns_socket(proc.pid, _listening_inodes(port)):
            return
        time.sleep(0.05)  # someone else's listener: ours may still bind (reuseport) or exit
    if proc is not None and _listening_inodes(port):
        raise RuntimeError(f"port {port} is held by another process, not by {what}")
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def make_self_signed_cert(state_dir, domains):
    """A self-signed certificate for the local cluster's domains (kept across runs)."""
    cert = os.path.join(state_dir, "tls", "cert.pem")
    key = os.path.join(state_dir, "tls", "key.pem")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    os.makedirs(os.path.dirname(cert), exist_ok=True)
    san = ",".join(f"DNS:{d}" for d in domains) + ",IP:127.0.0.1"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "3650", "-subj", f"/CN={domains[0]}", "-addext",
                    f"subjectAltName={san}"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def make_internal_pki(state_dir, name="internal"):
    """A CA and one certificate for service-to-service gRPC (mutual TLS), named xc-internal as
    --grpc_tls_server_name expects. Returns the gRPC TLS flags."""
    d = os.path.join(state_dir, name)
    os.makedirs(d, exist_ok=True)
    ca_key, ca, key, csr, cert = (os.path.join(d, f) for f in
                                  ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
    ext = os.path.join(d, "ext.cnf")
    if not os.path.exists(cert):
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca,
                        "-days", "3650", "-subj", f"/CN=xc {name} CA"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "req", *ec, "-keyout", key, "-out", csr,
                        "-subj", "/CN=xc-internal"], check=True, capture_output=True)
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:xc-internal\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                        "-CAcreateserial", "-out", cert, "-days", "3650", "-extfile", ext],
                       check=True, capture_output=True)
    return [f"--grpc_tls_ca={ca}", f"--grpc_tls_cert={cert}", f"--grpc_tls_key={key}"]


def replica_name(service, i):
    """roster, roster2, roster3, ... (the first keeps the plain name)."""
    return service if i == 0 else f"{service}{i + 1}"


def free_cluster_port():
    """A free port whose Redis Cluster bus port (+10000) is free too."""
    return free_port(span=10000)


# Redis's jemalloc gives freed pages back to the kernel at once instead of after its 10 s decay:
# while rosters grow, ~10 MB of a K=5000 run's Redis RSS was freed-but-kept pages (allocator_rss
# in INFO memory; docs/performance.md). Debian's redis-server uses the system jemalloc, which
# reads MALLOC_CONF; a Redis built with its bundled jemalloc reads JE_MALLOC_CONF.
REDIS_MALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"


def find_redis_server():
    for path in ("/usr/bin/redis-server", shutil.which("redis-server") or ""):
        if path and os.path.exists(path):
            return path
    raise RuntimeError("redis-server not found (apt-get install redis-server)")


# Least-privilege Redis users, one per service: the keys each may touch (docs/storage.md has the
# layout; `%R~` is read-only) and the commands (no admin or dangerous commands). The Bitnami values
# in deploy/redis/values.yaml carry the same rules; every end-to-end test runs under them.
# CLUSTER SLOTS: the cluster client's slot map (ASKING is in @connection).
REDIS_COMMANDS = "-@all +@read +@write +@scripting +@connection -@dangerous +cluster|slots"
REDIS_USERS = {
    "roster": "~{*}:roster ~{*}:rver ~{*}:rlog ~{*}:pending %R~{*}:account",
    "router": ("~{*}:sess ~{*}:pres ~{*}:lastoff %R~{*}:roster %R~{*}:pending "
               "~gateways ~gateway:* ~reaper:lock"),
    "gateway": "%R~{*}:account ~gateways ~gateway:*",
}


def redis_acl(state_dir):
    """Writes the ACL file (random passwords, kept across runs); returns {user: password}."""
    path = os.path.join(state_dir, "redis", "passwords.json")
    if os.path.exists(path):
        with open(path) as f:
            passwords = json.load(f)
    else:
        passwords = {u: secrets.token_hex(16) for u in (*REDIS_USERS, "admin")}
        with open(path, "w") as f:
            json.dump(passwords, f)
        os.chmod(path, 0o600)
    # The default user must keep every permission: Redis 7.0 replays the MULTI/EXEC blocks of
    # scripts from the AOF as the default user and silently drops them when it is off or
    # restricted (every roster write lost on restart; found by tests/integration/chaos_test.py).
    # It is protected by the admin password instead.
    lines = [f"user default on >{passwords['admin']} ~* &* +@all"]
    for user, keys in REDIS_USERS.items():
        lines.append(f"user {user} on >{passwords[user]} resetchannels {keys} {REDIS_COMMANDS}")
    lines.append(f"user admin on >{passwords['admin']} ~* &* +@all")
    with open(os.path.join(state_dir, "redis", "users.acl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return passwords


class LocalCluster:
    """One cluster on loopback. Ports default to free ones; pass `ports` to pin them."""

    def __init__(self, bin_dir, state_dir, domains=("localhost",), gateways=2, ports=None,
                 detach=False, heartbeat_ttl_ms=3000, reap_interval_ms=500, tls=False,
                 gateway_flags=(), gateway_flags_by_index=None, grpc_tls=False, redis_cluster=0,
                 replicas=1, redis_flags=(), census_interval="1s", service_flags=()):
        self.bin_dir = bin_dir
        self.state_dir = state_dir
        self.domains = list(domains)
        self.gateway_count = gateways
        self.detach = detach
        self.heartbeat_ttl_ms = heartbeat_ttl_ms
        self.reap_interval_ms = reap_interval_ms
        self.tls = tls
        self.tls_files = None
        self.gateway_flags = list(gateway_flags)
        self.grpc_tls = grpc_tls  # service-to-service gRPC over mutual TLS
        self.grpc_tls_flags = []
        # 0: one standalone Redis; N >= 3: a Redis Cluster of N masters (issue 7).
        self.redis_cluster = redis_cluster
        self.replicas = replicas  # of the roster service and of the presence router
        self.redis_flags = list(redis_flags)
        # Extra flags for every roster, router and gateway process (e.g. --grpc_streams=false).
        self.service_flags = list(service_flags)
        # The roster service's census of waiting requests SCANs the whole keyspace: often on the
        # tests' small keyspaces, at the production default for benchmarks.
        self.census_interval = census_interval
        # Extra flags for one gateway (0-based index), e.g. a different --advertise address.
        self.gateway_flags_by_index = dict(gateway_flags_by_index or {})
        p = ports or {}
        self.redis_port = p.get("redis") or (free_cluster_port() if redis_cluster else free_port())
        self.redis_ports = [self.redis_port] + [free_cluster_port()
                                                for _ in range(max(redis_cluster - 1, 0))]
        self.roster_port = p.get("roster") or free_port()
        self.router_port = p.get("router") or free_port()
        self.roster_ports = [self.roster_port] + [free_port() for _ in range(replicas - 1)]
        self.router_ports = [self.router_port] + [free_port() for _ in range(replicas - 1)]
        self.gateway_ports = p.get("gateways") or [free_port() for _ in range(gateways)]
        self.gateway_grpc_ports = p.get("gateway_grpc") or [free_port() for _ in range(gateways)]
        # Admin HTTP (/metrics /livez /readyz): roster, router, then one per gateway.
        self.admin_ports = p.get("admin") or {
            "roster": free_port(), "router": free_port(),
            **{f"gateway{i + 1}": free_port() for i in range(gateways)}}
        for i in range(1, replicas):
            self.admin_ports[f"roster{i + 1}"] = free_port()
            self.admin_ports[f"router{i + 1}"] = free_port()
        self.procs = {}

    def _bin(self, name):
        path = os.path.join(self.bin_dir, name)
        if not os.path.exists(path):
            raise RuntimeError(f"missing binary {path}")
        return path

    def redis_env(self, user):
        return {**os.environ, "XC_REDIS_USER": user,
                "XC_REDIS_PASSWORD": self.redis_passwords[user]}

    def _spawn(self, name, argv, redis_user=None, env=None):
        log = open(os.path.join(self.state_dir, f"{name}.log"), "ab")
        if redis_user:
            env = self.redis_env(redis_user)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=self.detach)
        self.procs[name] = proc
        return proc

    @property
    def redis_address(self):
        if self.redis_cluster:
            return "cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.redis_ports)
        return f"127.0.0.1:{self.redis_port}"

    def _start_redis(self):
        acl = os.path.join(self.state_dir, "redis", "users.acl")
        # hash-max-listpack-value: as deployed (deploy/redis/values.yaml), accounts as listpacks.
        env = {**os.environ, "MALLOC_CONF": REDIS_MALLOC_CONF, "JE_MALLOC_CONF": REDIS_MALLOC_CONF}
        # auto-aof-rewrite-min-size: as deployed; every rewrite forks Redis (docs/operations.md).
        common = ["--bind", "127.0.0.1", "--appendonly", "yes", "--aclfile", acl, "--save", "",
                  "--auto-aof-rewrite-min-size", "256mb",
                  "--hash-max-listpack-value", "128",
                  "--daemonize", "no", "--protected-mode", "yes", *self.redis_flags]
        if not self.redis_cluster:
            redis = self._spawn("redis", [
                find_redis_server(), "--port", str(self.redis_port),
                "--dir", os.path.join(self.state_dir, "redis"), *common], env=env)
            wait_for_port(self.redis_port, redis, what="redis-server")
            return
        for i, port in enumerate(self.redis_ports):
            node_dir = os.path.join(self.state_dir, "redis", f"node-{port}")
            os.makedirs(node_dir, exist_ok=True)
            node = self._spawn("redis" if i == 0 else f"redis{i + 1}", [
                find_redis_server(), "--port", str(port), "--dir", node_dir,
                "--cluster-enabled", "yes", "--cluster-node-timeout", "3000", *common],
                env=env)
            wait_for_port(port, node, what=f"redis-server (cluster node {i + 1})")
        auth = ["--no-auth-warning", "--user", "admin", "--pass", self.redis_passwords["admin"]]
        marker = os.path.join(self.state_dir, "redis", "cluster-created")
        if not os.path.exists(marker):
            subprocess.run(["redis-cli", *auth, "--cluster", "create",
                            *[f"127.0.0.1:{p}" for p in self.redis_ports],
                            "--cluster-replicas", "0", "--cluster-yes"],
                           capture_output=True, text=True, timeout=60, check=True)
            open(marker, "w").close()
        deadline = time.monotonic() + 30
        for port in self.redis_ports:
            while "cluster_state:ok" not in subprocess.run(
                    ["redis-cli", "-p", str(port), *auth, "cluster", "info"],
                    capture_output=True, text=True, timeout=10).stdout:
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
                time.sleep(0.1)

    def start(self):
        os.makedirs(os.path.join(self.state_dir, "redis"), exist_ok=True)
        self.redis_passwords = redis_acl(self.state_dir)
        if self.grpc_tls:
            self.grpc_tls_flags = make_internal_pki(self.state_dir)
        self._start_redis()
        for i in range(self.replicas):
            self.start_roster(i, wait=False)
            self.start_router(i, wait=False)
        for i in range(self.replicas):
            wait_for_port(self.roster_ports[i], self.procs[replica_name("roster", i)],
                          what="roster service")
            wait_for_port(self.router_ports[i], self.procs[replica_name("router", i)],
                          what="presence router")
        for i in range(self.gateway_count):
            self.start_gateway(i)
        self._write_state()
        return self

    @staticmethod
    def _target(ports):
        """A gRPC target over every replica (clients balance round_robin)."""
        if len(ports) == 1:
            return f"127.0.0.1:{ports[0]}"
        return "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)

    @property
    def roster_target(self):
        return self._target(self.roster_ports)

    @property
    def router_target(self):
        return self._target(self.router_ports)

    def roster_command(self, i, admin_port=None):
        """argv of roster replica i (`admin_port`: another admin port than its own)."""
        admin = admin_port or self.admin_ports[replica_name("roster", i)]
        return [
            self._bin("roster_service"), f"--listen=127.0.0.1:{self.roster_ports[i]}",
            f"--redis={self.redis_address}", f"--router={self.router_target}",
            f"--admin_listen=127.0.0.1:{admin}",
            f"--waiting_census_interval={self.census_interval}", *self.grpc_tls_flags,
            *self.service_flags]

    def start_roster(self, i, wait=True):
        name = replica_name("roster", i)
        proc = self._spawn(name, self.roster_command(i), redis_user="roster")
        if wait:
            wait_for_port(self.roster_ports[i], proc, what="roster service")
        return proc

    def start_router(self, i, wait=True):
        name = replica_name("router", i)
        proc = self._spawn(name, [
            self._bin("presence_router"), f"--listen=127.0.0.1:{self.router_ports[i]}",
            f"--redis={self.redis_address}", f"--reap_interval_ms={self.reap_interval_ms}",
            f"--admin_listen=127.0.0.1:{self.admin_ports[name]}", *self.grpc_tls_flags,
            *self.service_flags],
            redis_user="router")
        if wait:
            wait_for_port(self.router_ports[i], proc, what="presence router")
        return proc

    def start_gateway(self, i):
        if self.tls:
            if self.tls_files is None:
                self.tls_files = make_self_signed_cert(self.state_dir, self.domains)
            security = [f"--tls_cert={self.tls_files[0]}", f"--tls_key={self.tls_files[1]}"]
        else:
            security = ["--allow_plaintext"]
        gw = self._spawn(f"gateway{i + 1}", [
            self._bin("gateway"), f"--id=gw{i + 1}",
            f"--listen=127.0.0.1:{self.gateway_ports[i]}",
            f"--grpc_listen=127.0.0.1:{self.gateway_grpc_ports[i]}",
            f"--domains={','.join(self.domains)}", f"--redis={self.redis_address}",
            f"--roster={self.roster_target}", f"--router={self.router_target}",
            f"--heartbeat_ttl_ms={self.heartbeat_ttl_ms}",
            f"--admin_listen=127.0.0.1:{self.admin_ports[f'gateway{i + 1}']}",
            *security, *self.grpc_tls_flags, *self.service_flags, *self.gateway_flags,
            *self.gateway_flags_by_index.get(i, ())],
            redis_user="gateway")
        wait_for_port(self.gateway_ports[i], gw, what=f"gateway {i + 1}")
        return gw

    def admin(self, *args):
        out = subprocess.run([self._bin("xc-admin"), f"--redis={self.redis_address}",
                              f"--roster={self.roster_target}", *self.grpc_tls_flags,
                              *args],
                             capture_output=True, text=True, timeout=30,
                             env=self.redis_env("admin"))
        if out.returncode != 0:
            raise RuntimeError(f"xc-admin {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def admin_status(self, *args):
        """Runs xc-admin; returns (exit status, stdout) without raising."""
        out = subprocess.run([self._bin("xc-admin"), f"--redis={self.redis_address}",
                              f"--roster={self.roster_target}", *self.grpc_tls_flags,
                              *args],
                             capture_output=True, text=True, timeout=60,
                             env=self.redis_env("admin"))
        return out.returncode, out.stdout + out.stderr

    def redis_cli(self, *args):
        cluster = ["-c"] if self.redis_cluster else []  # follow MOVED
        out = subprocess.run(["redis-cli", *cluster, "-p", str(self.redis_port), "--no-auth-warning",
                              "--user", "admin", "--pass", self.redis_passwords["admin"], *args],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()

    def add_user(self, jid, password):
        return self.admin("user", "add", jid, password)

    def kill(self, name, sig=signal.SIGKILL):
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=15)

    def _write_state(self):
        state = {
            "pids": {name: p.pid for name, p in self.procs.items()},
            "redis": self.redis_address,
            "redis_admin_password": self.redis_passwords["admin"],
            "gateways": self.gateway_ports,
            "admin": self.admin_ports,
            "domains": self.domains,
        }
        with open(os.path.join(self.state_dir, "cluster.json"), "w") as f:
            json.dump(state, f)

    def stop(self):
        # Gateways first (their drain talks to the router), then the services, then Redis;
        # the processes of one phase stop concurrently.
        phases = [[n for n in self.procs if n.startswith("gateway")],
                  [n for n in self.procs if n.startswith(("roster", "router"))],
                  [n for n in self.procs if n.startswith("redis")]]
        for phase in phases:
            running = [self.procs[n] for n in phase if n in self.procs and self.procs[n].poll() is None]
            for proc in running:
                proc.terminate()
            for proc in running:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def stop_from_state(state_dir):
    path = os.path.join(state_dir, "cluster.json")
    if not os.path.exists(path):
        print("no local cluster is running")
        return
    with open(path) as f:
        state = json.load(f)
    pids = state["pids"]
    order = sorted(pids, key=lambda n: (not n.startswith("gateway"), n.startswith("redis")))
    for name in order:
        pid = pids[name]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        print(f"stopped {name} (pid {pid})")
    os.remove(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--bin-dir")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--domains", default="localhost")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--users", default="alice,bob,carol")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--plaintext", action="store_true",
                        help="no TLS: SASL over plaintext (loopback development only)")
    parser.add_argument("--redis-cluster", type=int, default=0, metavar="N",
                        help="a Redis Cluster of N >= 3 masters (ports 6390, 6391, ...) "
                             "instead of one Redis")
    args = parser.parse_args()
    if args.redis_cluster and args.redis_cluster < 3:
        sys.exit("--redis-cluster needs at least 3 masters")
    if args.command == "down":
        stop_from_state(args.state_dir)
        return
    os.makedirs(args.state_dir, exist_ok=True)
    if os.path.exists(os.path.join(args.state_dir, "cluster.json")):
        stop_from_state(args.state_dir)
    ports = {"redis": 6390, "roster": 7101, "router": 7102,
             "gateways": [5222 + i for i in range(args.gateways)],
             "gateway_grpc": [7201 + i for i in range(args.gateways)],
             "admin": {"roster": 9101, "router": 9102,
                       **{f"gateway{i + 1}": 9201 + i for i in range(args.gateways)}}}
    cluster = LocalCluster(args.bin_dir, args.state_dir, args.domains.split(","), args.gateways,
                           ports=ports, detach=True, tls=not args.plaintext,
                           redis_cluster=args.redis_cluster)
    if args.redis_cluster:
        cluster.redis_ports = [6390 + i for i in range(args.redis_cluster)]
    try:
        cluster.start()
    except Exception as e:  # leave nothing half-started behind
        cluster.stop()
        sys.exit(f"cluster failed to start: {e} (logs in {args.state_dir})")
    users = []
    for domain in cluster.domains:
        for name in args.users.split(","):
            if name:
                cluster.add_user(f"{name}@{domain}", args.password)
                users.append(f"{name}@{domain}")
    print(f"""
Local cluster is up (logs and data in {args.state_dir}):
  redis            {cluster.redis_address}  (AOF on)
  roster service   127.0.0.1:{cluster.roster_port}
  presence router  127.0.0.1:{cluster.router_port}""")
    for i, port in enumerate(cluster.gateway_ports):
        print(f"  gateway {i + 1}        127.0.0.1:{port}  (XMPP client port)")
    admin = ", ".join(f"{name} {port}" for name, port in cluster.admin_ports.items())
    print(f"  metrics          http://127.0.0.1:PORT/metrics (also /livez /readyz): {admin}")
    security = (f"STARTTLS is required; the certificate is self-signed ({cluster.tls_files[0]}):\n"
                "accept it in the client. SASL: SCRAM-SHA-256, SCRAM-SHA-1, PLAIN (inside TLS)."
                if cluster.tls else
                "No TLS (--plaintext): allow plaintext authentication in the client.")
    print(f"""
Demo users (password '{args.password}'): {', '.join(users)}
Connect any XMPP client to 127.0.0.1 port {cluster.gateway_ports[0]} (or {cluster.gateway_ports[-1]}),
domain {cluster.domains[0]}, e.g. user alice@{cluster.domains[0]}.
{security}
Add users: ./cluster user add bob2@{cluster.domains[0]} PASSWORD      Stop: ./cluster down""")


if __name__ == "__main__":
    main()
