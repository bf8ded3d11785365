"""End-to-end test support: a real cluster (the launcher's processes) and real XMPP clients
(slixmpp, Debian's python3-slixmpp) that record every stanza they receive.

Run under Bazel by run_e2e.sh; binaries come from runfiles.
"""
import asyncio
import copy
import logging
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.environ.get("TEST_SRCDIR", ""), "xmpp_cluster", "tools", "cluster"))
from local_cluster import LocalCluster  # noqa: E402

import slixmpp  # noqa: E402

NS_CLIENT = "{jabber:client}"
NS_ROSTER = "{jabber:iq:roster}"
BINARIES = {
    "roster_service": "services/roster/roster_service",
    "presence_router": "services/presence/presence_router",
    "gateway": "services/gateway/gateway",
    "xc-admin": "tools/admin/xc-admin",
    "xc-loadgen": "tools/loadgen/xc-loadgen",
}
PASSWORD = "s3cret pass"


def runfiles_bin_dir():
    root = os.path.join(os.environ["TEST_SRCDIR"], "xmpp_cluster")
    bin_dir = tempfile.mkdtemp(prefix="bin", dir=os.environ.get("TEST_TMPDIR"))
    for name, rel in BINARIES.items():
        os.symlink(os.path.join(root, rel), os.path.join(bin_dir, name))
    return bin_dir


def bare(jid):
    return jid.split("/", 1)[0]


class TcpProxy:
    """A loopback TCP relay that a test can cut (refuse and drop every connection) and restore,
    to make one process unreachable from another while both keep running."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = None
        self._listener = None
        self._conns = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self):
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Client(slixmpp.ClientXMPP):
    """A logged-in XMPP client that keeps every stanza it receives, in order."""

    def __init__(self, jid, password=PASSWORD, mechanism=None):
        if mechanism:
            super().__init__(jid, password, sasl_mech=mechanism)
        else:
            super().__init__(jid, password)
        # The test cluster's certificate is self-signed.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.received = []
        self.cursor = 0
        self.ready = asyncio.Event()
        self.failed = None
        self["feature_mechanisms"].unencrypted_plain = True
        self.roster.auto_authorize = None  # the test answers subscription requests itself
        self.roster.auto_subscribe = False
        self.add_filter("in", self._record)
        self.add_event_handler("session_bind", self._bound)
        self.add_event_handler("failed_auth", lambda *_: self._fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda *_: self._fail("connection failed"))

    def _record(self, stanza):
        self.received.append(copy.deepcopy(stanza.xml))
        return stanza

    def _bound(self, *_):
        self.ready.set()

    def _fail(self, why):
        self.failed = why
        self.ready.set()

    async def login(self, port, roster=True, presence=True, tls=False):
        if tls:
            self.connect(address=("127.0.0.1", port), force_starttls=True)
        else:
            self.connect(address=("127.0.0.1", port), use_ssl=False, force_starttls=False,
                         disable_starttls=True)
        await asyncio.wait_for(self.ready.wait(), 15)
        if self.failed:
            raise AssertionError(f"{self.boundjid}: {self.failed}")
        if roster:
            await self.get_roster()
        if presence:
            # Wait until the server has made this resource available (its own presence comes
            # back), so that stanzas others send to the bare JID cannot overtake it.
            mark = self.cursor
            self.send_raw("<presence/>")
            full = self.boundjid.full
            await self.expect(lambda e: e.tag == NS_CLIENT + "presence" and e.get("from") == full
                              and e.get("type") is None, "own initial presence")
            self.rewind(mark)
        return self

    def mark(self):
        return self.cursor

    def rewind(self, mark):
        """Look again from `mark` (for stanzas whose relative order is not specified)."""
        self.cursor = mark

    def skip_received(self):
        """Forget what arrived so far; later expectations see only what comes next."""
        self.cursor = len(self.received)

    async def expect(self, predicate, what, timeout=8.0):
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self.cursor, len(self.received)):
                if predicate(self.received[i]):
                    self.cursor = i + 1
                    return self.received[i]
            if time.monotonic() > deadline:
                seen = "\n  ".join(ET.tostring(e, encoding="unicode") for e in self.received[self.cursor:])
                raise AssertionError(f"{self.boundjid.full}: no {what} within {timeout}s; got:\n  {seen}")
            await asyncio.sleep(0.02)

    async def expect_none(self, predicate, what, within=1.0):
        await asyncio.sleep(within)
        for e in self.received[self.cursor:]:
            if predicate(e):
                raise AssertionError(f"{self.boundjid.full}: unexpected {what}: "
                                     f"{ET.tostring(e, encoding='unicode')}")

    def count(self, predicate):
        return sum(1 for e in self.received if predicate(e))

    async def logout(self):
        self.disconnect()
        await asyncio.sleep(0.2)


def presence(ptype=None, frm=None, to=None, show=None):
    """A predicate for a received <presence/>."""
    def match(e):
        if e.tag != NS_CLIENT + "presence":
            return False
        if ptype is not None and e.get("type", "") != ptype:
            return False
        if frm is not None and e.get("from") != frm:
            return False
        if to is not None and e.get("to") != to:
            return False
        if show is not None and e.findtext(NS_CLIENT + "show") != show:
            return False
        return True
    return match


def roster_push(jid, **attrs):
    """A predicate for a roster push about `jid` whose item has exactly `attrs` (None = absent)."""
    def match(e):
        if e.tag != NS_CLIENT + "iq" or e.get("type") != "set":
            return False
        item = e.find(f"{NS_ROSTER}query/{NS_ROSTER}item")
        if item is None or item.get("jid") != jid:
            return False
        return all(item.get(k) == v for k, v in attrs.items())
    return match


def print_cluster_logs(state_dir, tail=4000):
    """The end of every process's log, for a test that failed."""
    for name in sorted(os.listdir(state_dir)):
        if name.endswith(".log"):
            with open(os.path.join(state_dir, name), errors="replace") as f:
                print(f"--- {name}\n" + f.read()[-tail:])


class ClusterTestCase(unittest.IsolatedAsyncioTestCase):
    """One fresh cluster (Redis + services + gateways) per test class."""

    gateways = 2
    tls = False
    gateway_flags = ()
    grpc_tls = False
    redis_cluster = 0  # N >= 3: run on a Redis Cluster of N masters
    replicas = 1  # of the roster service and of the presence router
    redis_flags = ()
    domains = ("localhost",)
    users = ("alice", "bob", "carol", "dave")
    _failed = False  # a test of the class failed (set on the subclass by run())

    @classmethod
    def setUpClass(cls):
        logging.basicConfig(level=logging.CRITICAL)
        state = tempfile.mkdtemp(prefix="cluster", dir=os.environ.get("TEST_TMPDIR"))
        cls.cluster = LocalCluster(runfiles_bin_dir(), state, cls.domains, cls.gateways,
                                   heartbeat_ttl_ms=2000, reap_interval_ms=300, tls=cls.tls,
                                   gateway_flags=cls.gateway_flags, grpc_tls=cls.grpc_tls,
                                   redis_cluster=cls.redis_cluster, replicas=cls.replicas,
                                   redis_flags=cls.redis_flags)
        cls.configure_cluster(cls.cluster)
        try:
            cls.cluster.start()
            for domain in cls.domains:
                for user in cls.users:
                    cls.cluster.add_user(f"{user}@{domain}", PASSWORD)
        except Exception:
            cls.cluster.stop()
            print_cluster_logs(state)
            raise

    @classmethod
    def configure_cluster(cls, cluster):
        """Hook: adjust the cluster (ports are chosen) before it starts."""

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()
        if cls._failed:
            print_cluster_logs(cls.cluster.state_dir)

    def run(self, result=None):
        # A failed test leaves the cluster's logs in the test output (what CI shows).
        before = len(result.failures) + len(result.errors) if result is not None else 0
        result = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            type(self)._failed = True
        return result

    async def asyncSetUp(self):
        self.clients = []

    async def asyncTearDown(self):
        for c in self.clients:
            c.disconnect()
        await asyncio.sleep(0.3)

    def port(self, gateway):
        return self.cluster.gateway_ports[gateway - 1]

    async def login(self, jid, gateway=1, mechanism=None, password=PASSWORD, **kwargs):
        c = Client(jid, password, mechanism)
        self.clients.append(c)
        return await c.login(self.port(gateway), tls=self.tls, **kwargs)
