"""RFC 6121 §4 and §8 through real gateways with a real client library (slixmpp)."""
import unittest

from xmpp_harness import ClusterTestCase, NS_CLIENT, presence, roster_push

USERS = tuple(f"p{i}" for i in range(1, 21))


class PresenceTest(ClusterTestCase):
    users = USERS

    async def befriend(self, a, b, ga=1, gb=2):
        """a and b subscribed both ways; returns their logged-in clients."""
        ua = await self.login(f"{a}@localhost/one", gateway=ga)
        ub = await self.login(f"{b}@localhost/two", gateway=gb)
        for x, y, cx, cy, final in ((a, b, ua, ub, "to"), (b, a, ub, ua, "both")):
            cx.send_raw(f"<presence type='subscribe' to='{y}@localhost'/>")
            await cy.expect(presence("subscribe", frm=f"{x}@localhost"), "request")
            cy.send_raw(f"<presence type='subscribed' to='{x}@localhost'/>")
            await cx.expect(roster_push(f"{y}@localhost", subscription=final), "approved push")
        await ua.expect(roster_push(f"{b}@localhost", subscription="both"), "both on a's side")
        ua.skip_received()
        ub.skip_received()
        return ua, ub

    async def test_initial_presence_reaches_subscribers_and_probes_contacts(self):  # 48, 49
        ua, ub = await self.befriend("p1", "p2")
        ub.send_raw("<presence id='st1'><show>xa</show></presence>")
        await ua.expect(presence(None, frm="p2@localhost/two", show="xa"), "xa")
        # A new resource of p1 gets p2's last presence (full XML, original id) and p2 sees it come.
        third = await self.login("p1@localhost/three", gateway=2)
        last = await third.expect(presence(None, frm="p2@localhost/two"), "probe answer")
        self.assertEqual(last.get("id"), "st1")
        self.assertEqual(last.findtext(NS_CLIENT + "show"), "xa")
        await ub.expect(presence(None, frm="p1@localhost/three"), "new resource's presence")
        await ua.expect(presence(None, frm="p1@localhost/three"), "own other resource")

    async def test_graceful_unavailable_keeps_status(self):  # checklist 51
        ua, ub = await self.befriend("p3", "p4")
        ua.send_raw("<presence type='unavailable'><status>gone fishing</status></presence>")
        gone = await ub.expect(presence("unavailable", frm="p3@localhost/one"), "unavailable")
        self.assertEqual(gone.findtext(NS_CLIENT + "status"), "gone fishing")
        # Available again counts as initial: broadcast again (checklist 52).
        ua.send_raw("<presence/>")
        await ub.expect(presence(None, frm="p3@localhost/one"), "available again")

    async def test_disconnect_generates_unavailable(self):  # checklist 51
        ua, ub = await self.befriend("p5", "p6")
        ua.disconnect()
        await ub.expect(presence("unavailable", frm="p5@localhost/one"), "generated unavailable")

    async def test_directed_presence(self):  # checklist 53
        ua = await self.login("p7@localhost/one", gateway=1)
        ux = await self.login("p8@localhost/two", gateway=2)
        ua.send_raw("<presence to='p8@localhost'><status>hello stranger</status></presence>")
        await ux.expect(presence(None, frm="p7@localhost/one"), "directed presence")
        ua.send_raw("<presence><show>away</show></presence>")
        await ux.expect_none(presence(frm="p7@localhost/one", show="away"), "broadcast to non-subscriber", 0.7)
        ua.disconnect()
        await ux.expect(presence("unavailable", frm="p7@localhost/one"), "unavailable at session end")

    async def test_probe_by_non_subscriber(self):  # checklist 56
        ua = await self.login("p9@localhost/one", gateway=1)
        await self.login("p10@localhost/two", gateway=2)
        ua.send_raw("<presence type='probe' to='p10@localhost'/>")
        await ua.expect(presence("unsubscribed", frm="p10@localhost"), "nothing revealed")
        await ua.expect_none(presence(None, frm="p10@localhost/two"), "p10's presence", 0.5)

    async def test_bad_presence_type(self):  # checklist 55
        ua = await self.login("p11@localhost/one", gateway=1)
        ua.send_raw("<presence type='available' id='bad1'/>")
        err = await ua.expect(presence("error"), "bad-request")
        self.assertEqual(err.get("id"), "bad1")
        self.assertIsNotNone(err.find(f"{NS_CLIENT}error/"
                                      "{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request"))

    async def test_messages_across_gateways(self):  # §8
        ua = await self.login("p12@localhost/one", gateway=1)
        ub = await self.login("p13@localhost/two", gateway=2)
        await ub.expect(presence(None, frm="p13@localhost/two"), "p13 available")
        ua.send_raw("<message to='p13@localhost' type='chat' id='m1'><body>hi</body></message>")
        msg = await ub.expect(lambda e: e.tag == NS_CLIENT + "message", "message")
        self.assertEqual(msg.get("from"), "p12@localhost/one")
        self.assertEqual(msg.findtext(NS_CLIENT + "body"), "hi")
        ub.send_raw("<message to='nobody@localhost' type='chat' id='m2'><body>?</body></message>")
        err = await ub.expect(lambda e: e.tag == NS_CLIENT + "message" and e.get("type") == "error",
                              "service-unavailable")
        self.assertEqual(err.get("id"), "m2")


if __name__ == "__main__":
    unittest.main()
