"""RFC 6120 stream negotiation and every error path of the gateway, over raw sockets."""
import re
import unittest

from raw_stream import HEADER, Raw, stream_error
from xmpp_harness import ClusterTestCase

class StreamErrorsTest(ClusterTestCase):
    gateways = 1
    users = ("s1", "s2", "s3", "s4", "s5", "s6")

    def raw(self):
        r = Raw(self.port(1))
        self.addCleanup(r.close)
        return r

    def assert_stream_error(self, raw, condition):
        raw.read_until(stream_error(condition))
        self.assertTrue(raw.closed(), "the stream must be closed after a stream error")

    def test_header_reply(self):  # checklist 1, 3
        r = self.raw()
        r.open()
        header = r.read_until(r"<stream:stream[^>]*>").group(0)
        self.assertIn("from='localhost'", header)
        self.assertRegex(header, r"id='[a-z0-9]{16}'")
        self.assertIn("version='1.0'", header)
        self.assertIn("xml:lang=", header)
        self.assertNotIn(" to=", header)
        self.assertNotIn("starttls", r.buffer)  # plaintext listener: mechanisms directly
        r2 = self.raw()
        r2.open(extra=" from='s1@localhost'")
        self.assertIn("to='s1@localhost'", r2.read_until(r"<stream:stream[^>]*>").group(0))
        ids = {re.search(r"id='([^']*)'", r.buffer).group(1), re.search(r"id='([^']*)'", r2.buffer).group(1)}
        self.assertEqual(len(ids), 2)

    def test_unknown_host(self):  # checklist 2
        r = self.raw()
        r.send(HEADER.format(to="example.org", extra=""))
        r.read_until(r"<stream:stream[^>]*>")
        self.assert_stream_error(r, "host-unknown")

    def test_wrong_namespace(self):  # checklist 2
        r = self.raw()
        r.send("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
               "xmlns:stream='http://wrong.example/streams'>")
        self.assert_stream_error(r, "invalid-namespace")
        r2 = self.raw()
        r2.send("<stream:stream to='localhost' version='1.0' xmlns='jabber:server' "
                "xmlns:stream='http://etherx.jabber.org/streams'>")
        self.assert_stream_error(r2, "invalid-namespace")

    def test_bad_prefix(self):
        r = self.raw()
        r.send("<s:stream to='localhost' version='1.0' xmlns='jabber:client' "
               "xmlns:s='http://etherx.jabber.org/streams'>")
        self.assert_stream_error(r, "bad-namespace-prefix")

    def test_unsupported_version(self):
        # RFC 6120 §4.7.5: the reply states the lower of the two versions, and no version to a
        # header without one (a pre-1.0 peer, which this server does not speak).
        unversioned = ("<stream:stream to='localhost' xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams'>")
        for header, reply_version in ((unversioned, None),
                                      (HEADER.format(to="localhost", extra="").replace(
                                          "version='1.0'", "version='0.9'"), "0.9"),
                                      (HEADER.format(to="localhost", extra="").replace(
                                          "version='1.0'", "version='1.0.1'"), "1.0"),
                                      (HEADER.format(to="localhost", extra="").replace(
                                          "version='1.0'", "version='x.y'"), "1.0")):
            r = self.raw()
            r.send(header)
            reply = r.read_until(r"<stream:stream[^>]*>").group(0)
            if reply_version is None:
                self.assertNotIn("version=", reply.replace("<?xml version='1.0'?>", ""))
            else:
                self.assertIn(f"version='{reply_version}'", reply)
            self.assert_stream_error(r, "unsupported-version")

    def test_newer_versions_are_answered_with_1_0(self):
        for version in ("1.1", "2.0", "01.00"):
            r = self.raw()
            r.send(HEADER.format(to="localhost", extra="").replace("version='1.0'",
                                                                   f"version='{version}'"))
            features = r.read_until(r"</stream:features>")
            self.assertIn("version='1.0'", r.buffer, version)
            self.assertIn("<mechanisms", features.string, version)

    def test_not_well_formed(self):  # checklist 10
        r = self.raw()
        r.open()
        r.send("<message><body>unclosed</message>")
        self.assert_stream_error(r, "not-well-formed")

    def test_restricted_xml(self):  # checklist 10
        for bad in ("<!-- comment -->", "<?pi data?>", "<message>&custom;</message>"):
            r = self.raw()
            r.open()
            r.send(bad)
            self.assert_stream_error(r, "restricted-xml")
        r = self.raw()
        r.send("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]>" + HEADER.format(to="localhost", extra=""))
        self.assert_stream_error(r, "restricted-xml")

    def test_oversize_stanza_before_auth(self):
        r = self.raw()
        r.open()
        r.send("<message><body>" + "x" * 40000 + "</body></message>")
        self.assert_stream_error(r, "policy-violation")

    def test_stanza_before_auth(self):  # checklist 4
        r = self.raw()
        r.open()
        r.send("<message to='s2@localhost'><body>sneaky</body></message>")
        self.assert_stream_error(r, "not-authorized")

    def test_bad_password_then_policy_violation(self):  # checklist 5
        r = self.raw()
        r.open()
        for attempt in range(2):
            r.auth("s1", "wrong")
            r.read_until(r"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
            r.buffer = ""
        r.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        r.read_until(r"<aborted/>")
        r.auth("s1", "wrong")
        self.assert_stream_error(r, "policy-violation")

    def test_unknown_user_and_bad_mechanism(self):
        r = self.raw()
        r.open()
        r.auth("nosuchuser")
        r.read_until(r"<not-authorized/>")
        r.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-MAGIC'>=</auth>")
        r.read_until(r"<invalid-mechanism/>")
        r.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!notbase64</auth>")
        r.read_until(r"<incorrect-encoding/>")

    def test_success_restarts_with_new_id_and_bind_features(self):  # checklist 6
        r = self.raw()
        r.open()
        first = re.search(r"id='([^']*)'", r.buffer).group(1)
        r.auth("s1")
        r.read_until(r"<success")
        r.open()
        second = re.search(r"id='([^']*)'", r.buffer).group(1)
        self.assertNotEqual(first, second)
        for feature in ("urn:ietf:params:xml:ns:xmpp-bind", "urn:xmpp:features:rosterver",
                        "urn:xmpp:features:pre-approval"):
            self.assertIn(feature, r.buffer)
        self.assertNotIn("mechanisms", r.buffer)

    def test_stanza_after_auth_before_bind(self):  # checklist 9
        r = self.raw()
        r.open()
        r.auth("s2")
        r.read_until(r"<success")
        r.open()
        r.send("<message to='s1@localhost'><body>x</body></message>")
        self.assert_stream_error(r, "not-authorized")

    def test_bind_random_and_chosen_resources(self):  # checklist 7, 8
        r = self.raw()
        r.open()
        r.auth("s3")
        r.read_until(r"<success")
        r.open()
        r.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        jid = r.read_until(r"<jid>([^<]*)</jid>").group(1)
        self.assertRegex(jid, r"^s3@localhost/[a-z0-9]{12}$")
        a = self.raw().login("s4", "Balcony")
        self.assertEqual(a, "s4@localhost/Balcony")
        b = self.raw().login("s4", "Balcony")
        self.assertNotEqual(b, a)
        self.assertTrue(b.startswith("s4@localhost/Balcony"))

    def test_iq_errors(self):  # checklist 12
        r = self.raw()
        r.login("s5")
        r.send("<iq type='get' id='u1'><query xmlns='urn:example:unknown'/></iq>")
        r.read_until(r"<iq[^>]*type='error'[^>]*id='u1'.*?<service-unavailable")
        r.send("<iq type='foo' id='u2'><query xmlns='jabber:iq:roster'/></iq>")
        r.read_until(r"id='u2'.*?<bad-request")
        r.send("<iq type='get' id='u3'><ping xmlns='urn:xmpp:ping'/></iq>")
        r.read_until(r"<iq[^>]*type='result'[^>]*id='u3'")
        r.send("<iq type='get' id='u4' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        m = r.read_until(r"id='u4'.*?</iq>")
        self.assertIn("urn:xmpp:features:pre-approval", m.group(0))
        r.send("<iq type='get' id='u5'><query xmlns='jabber:iq:roster'/><x xmlns='y'/></iq>")
        r.read_until(r"id='u5'.*?<bad-request")
        r.send("<message to='someone@example.org' id='u6'><body>x</body></message>")
        r.read_until(r"id='u6'.*?<remote-server-not-found")
        r.send("<presence to='bad@' id='u7'/>")
        r.read_until(r"id='u7'.*?<jid-malformed")

    def test_unsupported_stanza_type(self):
        r = self.raw()
        r.login("s6")
        r.send("<foo xmlns='jabber:client'/>")
        self.assert_stream_error(r, "unsupported-stanza-type")

    def test_one_bad_stream_never_hurts_another(self):
        good = self.raw()
        good.login("s1", "good")
        bad = self.raw()
        bad.open()
        bad.send("<<<<")
        self.assert_stream_error(bad, "not-well-formed")
        good.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
        good.read_until(r"id='alive'")

    def test_client_closes_stream(self):
        r = self.raw()
        r.login("s2")
        r.send("</stream:stream>")
        r.read_until(r"</stream:stream>")
        self.assertTrue(r.closed())


if __name__ == "__main__":
    unittest.main()
