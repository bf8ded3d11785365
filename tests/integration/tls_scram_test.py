"""STARTTLS + SCRAM with a real client library, and the negotiation rules around them."""
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import unittest

from raw_stream import Raw
from local_cluster import free_port, make_internal_pki
from xmpp_harness import Client, ClusterTestCase, presence, roster_push

SUCCESS = "<success"
NOT_AUTHORIZED = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"


class TlsScramTest(ClusterTestCase):
    tls = True
    grpc_tls = True  # and the services talk to each other over mutual TLS
    users = ("romeo", "juliet", "nurse")
    domains = ("localhost", "example.com")

    @classmethod
    def configure_cluster(cls, cluster):
        cls.direct_tls_port = free_port()
        cluster.gateway_flags_by_index[0] = [f"--listen_tls=127.0.0.1:{cls.direct_tls_port}"]

    async def test_subscription_over_starttls_and_scram(self):
        # slixmpp picks the strongest offer, SCRAM-SHA-256-PLUS with tls-unique binding.
        romeo = await self.login("romeo@localhost/orchard", gateway=1)
        self.assertEqual(romeo["feature_mechanisms"].mech.name, "SCRAM-SHA-256-PLUS")
        juliet = await self.login("juliet@example.com/balcony", gateway=2,
                                  mechanism="SCRAM-SHA-1-PLUS")
        self.assertTrue(romeo.is_connected() and juliet.is_connected())
        # Two virtual hosts, one cluster: the RFC's own example crosses domains and gateways.
        romeo.send_raw("<presence type='subscribe' to='juliet@example.com'/>")
        req = await juliet.expect(presence("subscribe"), "request")
        self.assertEqual(req.get("from"), "romeo@localhost")
        juliet.send_raw("<presence type='subscribed' to='romeo@localhost'/>")
        await romeo.expect(roster_push("juliet@example.com", subscription="to"), "push to")
        await romeo.expect(presence(None, frm="juliet@example.com/balcony"), "presence")

    async def test_plain_inside_tls(self):
        nurse = await self.login("nurse@localhost/r", gateway=1, mechanism="PLAIN")
        self.assertTrue(nurse.is_connected())

    async def test_wrong_scram_password_fails(self):
        c = Client("nurse@localhost/x", "not the password", "SCRAM-SHA-256")
        self.clients.append(c)
        with self.assertRaises(AssertionError):
            await c.login(self.port(1), tls=True)

    def test_scram_variants_and_channel_binding_by_hand(self):
        def stream(**tls):
            r = Raw(self.port(1))
            self.addCleanup(r.close)
            features = r.starttls(**tls)
            return r, features

        r, features = stream()
        for mech in ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"):
            self.assertIn(f"<mechanism>{mech}</mechanism>", features)
        self.assertIn("<channel-binding type='tls-exporter'/>", features)  # XEP-0440
        self.assertIn(SUCCESS, r.scram("nurse", plus="tls-unique"))
        # TLS 1.2, where tls-unique is defined by RFC 5929 itself; SHA-1.
        r, _ = stream(max_version=ssl.TLSVersion.TLSv1_2)
        self.assertIn(SUCCESS, r.scram("nurse", sha="sha1", plus="tls-unique"))
        # Without channel binding ('n': the client does not support it) SCRAM still works.
        r, _ = stream()
        self.assertIn(SUCCESS, r.scram("nurse", flag="n"))
        # Binding data of another connection: a man in the middle. Refused.
        r, _ = stream()
        self.assertEqual(r.scram("nurse", plus="tls-unique", cb_data=b"\0" * 12), NOT_AUTHORIZED)
        # 'y' (client can bind but saw no -PLUS offer) although we offered it: a downgrade.
        r, _ = stream()
        self.assertEqual(r.scram("nurse", flag="y"), NOT_AUTHORIZED)
        r, _ = stream()
        self.assertEqual(r.scram("nurse", password="wrong"), NOT_AUTHORIZED)

    async def test_direct_tls_port(self):  # XEP-0368
        r = Raw(self.direct_tls_port, direct_tls=True)
        self.addCleanup(r.close)
        r.open()
        self.assertNotIn("starttls", r.buffer)
        self.assertIn("<mechanism>SCRAM-SHA-256-PLUS</mechanism>", r.buffer)
        self.assertIn(SUCCESS, r.scram("nurse", plus="tls-unique"))
        # A real client over direct TLS, end to end.
        c = Client("nurse@localhost/direct")
        self.clients.append(c)
        c.connect(address=("127.0.0.1", self.direct_tls_port), use_ssl=True)
        await asyncio.wait_for(c.ready.wait(), 15)
        self.assertIsNone(c.failed)
        await c.get_roster()

    def openssl_stream(self):
        """A stream through `openssl s_client` (Python's ssl cannot export keying material),
        carried over a socket pair; returns it and its RFC 9266 tls-exporter value."""
        ours, theirs = socket.socketpair()
        proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.direct_tls_port}",
             "-nocommands", "-keymatexport", "EXPORTER-Channel-Binding",
             "-keymatexportlen", "32"], stdin=theirs, stdout=theirs, stderr=subprocess.DEVNULL)
        self.addCleanup(proc.kill)
        r = Raw(0, sock=ours)
        self.addCleanup(r.close)
        exported = r.read_until(r"Keying material: ([0-9A-F]+)").group(1)
        r.open()
        return r, bytes.fromhex(exported)

    def test_tls_exporter_binding_with_openssl(self):  # RFC 9266
        r, exported = self.openssl_stream()
        self.assertIn(SUCCESS, r.scram("nurse", plus="tls-exporter", cb_data=exported))
        r, exported = self.openssl_stream()
        self.assertEqual(r.scram("nurse", plus="tls-exporter", cb_data=bytes(32)), NOT_AUTHORIZED)

    async def test_certificate_reload_on_sighup(self):
        before = Raw(self.port(1))
        self.addCleanup(before.close)
        before.starttls()
        old_cert = before.peer_certificate()
        romeo = await self.login("romeo@localhost/reload", gateway=1)
        cert, key = self.cluster.tls_files
        # A broken pair first: the gateway keeps serving with the current one.
        with open(cert, "w") as f:
            f.write("not a certificate")
        self.cluster.procs["gateway1"].send_signal(signal.SIGHUP)
        await asyncio.sleep(1.5)
        r = Raw(self.port(1))
        self.addCleanup(r.close)
        r.starttls()
        self.assertEqual(r.peer_certificate(), old_cert)
        # A new pair: new streams get it without a restart; open streams carry on.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "30", "-subj", "/CN=localhost"], check=True, capture_output=True)
        self.cluster.procs["gateway1"].send_signal(signal.SIGHUP)
        await asyncio.sleep(1.5)
        after = Raw(self.port(1))
        self.addCleanup(after.close)
        after.starttls()
        self.assertNotEqual(after.peer_certificate(), old_cert)
        self.assertIn(SUCCESS, after.scram("nurse", plus="tls-unique"))
        romeo.send_raw("<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        await romeo.expect(lambda e: e.get("id") == "still" and e.get("type") == "result",
                           "ping answered on a stream opened before the reload")

    def test_internal_grpc_requires_a_certificate_from_our_ca(self):  # issue 8
        rc, out = self.cluster.admin_status("roster", "list", "nurse@localhost")
        self.assertEqual(rc, 0, out)  # with the cluster's certificate: served
        bare = [a for a in self.cluster.grpc_tls_flags if not a.startswith("--grpc_tls")]
        plain = subprocess.run([self.cluster._bin("xc-admin"),
                                f"--roster=127.0.0.1:{self.cluster.roster_port}",
                                "roster", "list", "nurse@localhost", *bare],
                               capture_output=True, text=True, timeout=30)
        self.assertNotEqual(plain.returncode, 0)  # plaintext: refused
        self.assertIn("roster service", plain.stderr)
        foreign = make_internal_pki(self.cluster.state_dir, name="foreign")
        other = subprocess.run([self.cluster._bin("xc-admin"),
                                f"--roster=127.0.0.1:{self.cluster.roster_port}", *foreign,
                                "roster", "list", "nurse@localhost"],
                               capture_output=True, text=True, timeout=30)
        self.assertNotEqual(other.returncode, 0, other.stdout)  # another CA: refused

    def test_stage_one_offers_only_starttls(self):  # checklist 3
        r = Raw(self.port(1))
        self.addCleanup(r.close)
        r.open()
        features = r.read_until(r"<stream:features>(.*)</stream:features>").group(1)
        self.assertEqual(features,
                         "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>")
        self.assertNotIn("PLAIN", r.buffer)

    def test_auth_before_starttls_is_refused(self):
        r = Raw(self.port(1))
        self.addCleanup(r.close)
        r.open()
        r.auth("nurse")
        r.read_until(r"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/>")
        r.send("<message to='romeo@localhost'><body>x</body></message>")
        r.read_until(r"<not-authorized")
        self.assertTrue(r.closed())


if __name__ == "__main__":
    unittest.main()
