"""Walking skeleton: the RFC 6121 §3.1 exchange crosses two gateways, with exact assertions."""
import asyncio
import unittest

from xmpp_harness import ClusterTestCase, NS_CLIENT, presence, roster_push


class SubscriptionAcrossGatewaysTest(ClusterTestCase):

    async def test_subscribe_approve_and_presence_flow(self):
        alice = await self.login("alice@localhost/home", gateway=1)
        bob = await self.login("bob@localhost/work", gateway=2)
        await alice.expect(presence(frm="alice@localhost/home"), "own presence echo")
        await bob.expect(presence(frm="bob@localhost/work"), "own presence echo")

        # Alice asks; a full `to` and a spoofed `from` must both come out bare (§3.1.2, A13).
        alice.send_raw("<presence type='subscribe' to='bob@localhost/elsewhere' "
                       "from='mallory@localhost/x' id='sub1'/>")
        req = await bob.expect(presence("subscribe"), "subscription request")
        self.assertEqual(req.get("from"), "alice@localhost")
        self.assertEqual(req.get("to"), "bob@localhost")
        push = await alice.expect(roster_push("bob@localhost"), "roster push after subscribe")
        item = push.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
        self.assertEqual(item.get("ask"), "subscribe")
        self.assertEqual(item.get("subscription"), "none")

        # Bob approves: Alice gets `subscribed`, THEN the push (§3.1.6), then Bob's presence.
        bob.send_raw("<presence type='subscribed' to='alice@localhost' id='ok1'/>")
        subscribed = await alice.expect(presence("subscribed"), "subscribed")
        self.assertEqual(subscribed.get("from"), "bob@localhost")
        start = alice.received.index(subscribed)
        push = await alice.expect(roster_push("bob@localhost", subscription="to"), "push 'to'")
        self.assertGreater(alice.received.index(push), start)
        self.assertIsNone(push.find("{jabber:iq:roster}query/{jabber:iq:roster}item").get("ask"))
        await bob.expect(roster_push("alice@localhost", subscription="from"), "push 'from'")
        await alice.expect(presence(None, frm="bob@localhost/work"), "bob's available presence")

        # Later presence of Bob reaches Alice; Alice's does not reach Bob (no subscription that way).
        bob.skip_received()
        alice.skip_received()
        bob.send_raw("<presence><show>away</show><status>lunch</status></presence>")
        away = await alice.expect(presence(None, frm="bob@localhost/work", show="away"), "away")
        self.assertEqual(away.findtext(NS_CLIENT + "status"), "lunch")
        alice.send_raw("<presence><show>dnd</show></presence>")
        await bob.expect_none(presence(frm="alice@localhost/home"), "alice's presence", within=1.0)

    async def test_offline_request_waits_and_is_delivered_once_per_login(self):
        carol = await self.login("carol@localhost/laptop", gateway=1)
        for i in range(3):
            carol.send_raw(
                f"<presence type='subscribe' to='dave@localhost' id='c{i}'>"
                f"<status>please</status><nick xmlns='http://jabber.org/protocol/nick'>Carol</nick>"
                f"</presence>")
        await carol.expect(roster_push("dave@localhost", ask="subscribe"), "ask push")
        await asyncio.sleep(0.5)

        # Dave logs in on the other gateway: exactly one request, payload intact.
        dave = await self.login("dave@localhost/phone", gateway=2)
        req = await dave.expect(presence("subscribe", frm="carol@localhost"), "stored request")
        self.assertEqual(req.findtext(NS_CLIENT + "status"), "please")
        self.assertEqual(req.findtext("{http://jabber.org/protocol/nick}nick"), "Carol")
        await dave.expect_none(presence("subscribe"), "second copy of the request", within=1.0)
        self.assertEqual(dave.count(presence("subscribe")), 1)
        # The waiting request is not a roster item (§3.1.3).
        results = [e for e in dave.received if e.get("type") == "result"
                   and e.find("{jabber:iq:roster}query") is not None]
        self.assertEqual(len(results), 1)
        listed = [i.get("jid") for i in results[0].iter("{jabber:iq:roster}item")]
        self.assertNotIn("carol@localhost", listed)

        # Unanswered, it comes again at the next login (A8).
        await dave.logout()
        dave2 = await self.login("dave@localhost/tablet", gateway=1)
        await dave2.expect(presence("subscribe", frm="carol@localhost"), "redelivered request")
        self.assertEqual(dave2.count(presence("subscribe")), 1)


if __name__ == "__main__":
    unittest.main()
