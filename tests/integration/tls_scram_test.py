"""STARTTLS + SCRAM with a real client library, and the negotiation rules around them."""
import unittest

from raw_stream import Raw
from xmpp_harness import Client, ClusterTestCase, presence, roster_push


class TlsScramTest(ClusterTestCase):
    tls = True
    users = ("romeo", "juliet", "nurse")
    domains = ("localhost", "example.com")

    async def test_subscription_over_starttls_and_scram(self):
        romeo = await self.login("romeo@localhost/orchard", gateway=1, mechanism="SCRAM-SHA-256")
        juliet = await self.login("juliet@example.com/balcony", gateway=2, mechanism="SCRAM-SHA-1")
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
