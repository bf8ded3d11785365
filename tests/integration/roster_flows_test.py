"""RFC 6121 §2-§3 flows through real gateways with a real client library (slixmpp)."""
import asyncio
import unittest

from xmpp_harness import ClusterTestCase, NS_CLIENT, NS_ROSTER, presence, roster_push

USERS = tuple(f"u{i}" for i in range(1, 40))


def iq_result(iq_id):
    return lambda e: e.tag == NS_CLIENT + "iq" and e.get("id") == iq_id and e.get("type") == "result"


def iq_error(iq_id, condition):
    def match(e):
        if e.tag != NS_CLIENT + "iq" or e.get("id") != iq_id or e.get("type") != "error":
            return False
        err = e.find(NS_CLIENT + "error")
        return err is not None and err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}" + condition) is not None
    return match


class RosterFlowsTest(ClusterTestCase):
    users = USERS

    async def pair(self, a, b):
        """Logs in a@localhost on gateway 1 and b@localhost on gateway 2, both ready."""
        ua = await self.login(f"{a}@localhost/one", gateway=1)
        ub = await self.login(f"{b}@localhost/two", gateway=2)
        await ua.expect(presence(frm=f"{a}@localhost/one"), "own presence")
        await ub.expect(presence(frm=f"{b}@localhost/two"), "own presence")
        return ua, ub

    async def subscribe_both_ways(self, ua, ub, a, b):
        ua.send_raw(f"<presence type='subscribe' to='{b}@localhost'/>")
        await ub.expect(presence("subscribe", frm=f"{a}@localhost"), "request")
        ub.send_raw(f"<presence type='subscribed' to='{a}@localhost'/>")
        await ua.expect(roster_push(f"{b}@localhost", subscription="to"), "to")
        ub.send_raw(f"<presence type='subscribe' to='{a}@localhost'/>")
        await ua.expect(presence("subscribe", frm=f"{b}@localhost"), "request back")
        ua.send_raw(f"<presence type='subscribed' to='{b}@localhost'/>")
        await ua.expect(roster_push(f"{b}@localhost", subscription="both"), "both")
        await ub.expect(roster_push(f"{a}@localhost", subscription="both"), "both")
        ua.skip_received()
        ub.skip_received()

    async def test_deny(self):  # checklist 36
        ua, ub = await self.pair("u1", "u2")
        ua.send_raw("<presence type='subscribe' to='u2@localhost'/>")
        await ub.expect(presence("subscribe", frm="u1@localhost"), "request")
        ub.send_raw("<presence type='unsubscribed' to='u1@localhost'/>")
        await ua.expect(presence("unsubscribed", frm="u2@localhost"), "denial")
        await ua.expect(roster_push("u2@localhost", subscription="none"), "push none")
        await ua.expect_none(presence("unavailable", frm="u2@localhost/two"), "unavailable (A5)", 0.5)

    async def test_cancel(self):  # checklist 43
        ua, ub = await self.pair("u3", "u4")
        await self.subscribe_both_ways(ua, ub, "u3", "u4")
        ua.send_raw("<presence type='unsubscribed' to='u4@localhost'/>")
        unavailable = await ub.expect(presence("unavailable", frm="u3@localhost/one"), "unavailable first")
        cancel = await ub.expect(presence("unsubscribed", frm="u3@localhost"), "unsubscribed")
        self.assertLess(ub.received.index(unavailable), ub.received.index(cancel))
        await ua.expect(roster_push("u4@localhost", subscription="to"), "push to")
        # u3's broadcasts skip u4 from now on.
        ub.skip_received()
        ua.send_raw("<presence><show>away</show></presence>")
        await ub.expect_none(presence(frm="u3@localhost/one"), "broadcast after cancel", 1.0)

    async def test_unsubscribe(self):  # checklist 44
        ua, ub = await self.pair("u5", "u6")
        await self.subscribe_both_ways(ua, ub, "u5", "u6")
        ua.send_raw("<presence type='unsubscribe' to='u6@localhost/two'/>")
        req = await ub.expect(presence("unsubscribe"), "unsubscribe")
        self.assertEqual(req.get("from"), "u5@localhost")
        await ub.expect(roster_push("u5@localhost", subscription="to"), "push to")
        push = await ua.expect(roster_push("u6@localhost", subscription="from"), "push from")
        gone = await ua.expect(presence("unavailable", frm="u6@localhost/two"), "contact's unavailable")
        self.assertLess(ua.received.index(push), ua.received.index(gone))

    async def test_pre_approval(self):  # checklist 39, 40
        ua, ub = await self.pair("u7", "u8")
        ua.send_raw("<presence type='subscribed' to='u8@localhost'/>")
        await ua.expect(roster_push("u8@localhost", approved="true", subscription="none"), "approved push")
        await ub.expect_none(presence("subscribed"), "routed pre-approval", 0.5)
        ub.send_raw("<presence type='subscribe' to='u7@localhost'/>")
        await ub.expect(presence("subscribed", frm="u7@localhost"), "automatic subscribed")
        await ub.expect(roster_push("u7@localhost", subscription="to"), "push to")
        await ua.expect(roster_push("u8@localhost", subscription="from"), "push from")
        await ua.expect_none(presence("subscribe"), "request shown to u7", 0.5)
        await ub.expect(presence(None, frm="u7@localhost/one"), "u7's presence")

    async def test_remove_in_both(self):  # checklist 23
        ua, ub = await self.pair("u9", "u10")
        await self.subscribe_both_ways(ua, ub, "u9", "u10")
        ua.send_raw("<iq type='set' id='rm1'><query xmlns='jabber:iq:roster'>"
                    "<item jid='u10@localhost' subscription='remove'/></query></iq>")
        start = ua.mark()
        await ua.expect(iq_result("rm1"), "remove result")
        ua.rewind(start)  # result and push may come in either order (A22)
        await ua.expect(roster_push("u10@localhost", subscription="remove"), "remove push")
        await ub.expect(presence("unsubscribe", frm="u9@localhost"), "unsubscribe")
        unavailable = await ub.expect(presence("unavailable", frm="u9@localhost/one"), "unavailable")
        unsubscribed = await ub.expect(presence("unsubscribed", frm="u9@localhost"), "unsubscribed")
        self.assertLess(ub.received.index(unavailable), ub.received.index(unsubscribed))
        await ub.expect(roster_push("u9@localhost", subscription="none"), "ends as none")

    async def test_remove_in_to_from_and_pending_states(self):  # checklist 24, §2.5.2
        async def remove(ua, a, b):
            ua.send_raw(f"<iq type='set' id='rm-{b}'><query xmlns='jabber:iq:roster'>"
                        f"<item jid='{b}@localhost' subscription='remove'/></query></iq>")
            start = ua.mark()
            await ua.expect(iq_result(f"rm-{b}"), "remove result")
            ua.rewind(start)
            await ua.expect(roster_push(f"{b}@localhost", subscription="remove"), "remove push")

        # T (a subscribed to b): only unsubscribe reaches b, whose item ends as none.
        ua, ub = await self.pair("u29", "u30")
        ua.send_raw("<presence type='subscribe' to='u30@localhost'/>")
        await ub.expect(presence("subscribe", frm="u29@localhost"), "request")
        ub.send_raw("<presence type='subscribed' to='u29@localhost'/>")
        await ua.expect(roster_push("u30@localhost", subscription="to"), "to")
        ub.skip_received()
        await remove(ua, "u29", "u30")
        await ub.expect(presence("unsubscribe", frm="u29@localhost"), "unsubscribe")
        await ub.expect(roster_push("u29@localhost", subscription="none"), "b ends as none")
        await ub.expect_none(presence("unsubscribed"), "unsubscribed from a remove in T", 0.5)

        # F (b subscribed to a): only unsubscribed (after a's unavailable) reaches b.
        ua, ub = await self.pair("u31", "u32")
        ub.send_raw("<presence type='subscribe' to='u31@localhost'/>")
        await ua.expect(presence("subscribe", frm="u32@localhost"), "request")
        ua.send_raw("<presence type='subscribed' to='u32@localhost'/>")
        await ub.expect(presence(None, frm="u31@localhost/one"), "a's presence")
        ub.skip_received()
        await remove(ua, "u31", "u32")
        await ub.expect(presence("unavailable", frm="u31@localhost/one"), "unavailable")
        await ub.expect(presence("unsubscribed", frm="u31@localhost"), "unsubscribed")
        await ub.expect(roster_push("u31@localhost", subscription="none"), "b ends as none")
        await ub.expect_none(presence("unsubscribe"), "unsubscribe from a remove in F", 0.5)

        # None + Pending Out: the request is cancelled; b no longer holds it.
        ua, ub = await self.pair("u33", "u34")
        ua.send_raw("<presence type='subscribe' to='u34@localhost'/>")
        await ub.expect(presence("subscribe", frm="u33@localhost"), "request")
        await remove(ua, "u33", "u34")
        await ub.expect(presence("unsubscribe", frm="u33@localhost"), "cancellation")
        rc, out = await asyncio.to_thread(self.cluster.admin_status, "roster", "check",
                                          "u34@localhost")
        self.assertEqual((rc, "0 disagreements" in out), (0, True), out)

        # None + Pending In, with the contact in a's roster (a bare request is no item, A.1):
        # the request is denied.
        ua, ub = await self.pair("u35", "u36")
        ub.send_raw("<presence type='subscribe' to='u35@localhost'/>")
        await ua.expect(presence("subscribe", frm="u36@localhost"), "request")
        await ub.expect(roster_push("u35@localhost", ask="subscribe"), "b asks")
        ua.send_raw("<iq type='set' id='add36'><query xmlns='jabber:iq:roster'>"
                    "<item jid='u36@localhost' name='Asker'/></query></iq>")
        await ua.expect(roster_push("u36@localhost", name="Asker"), "item added")
        await remove(ua, "u35", "u36")
        await ub.expect(presence("unsubscribed", frm="u35@localhost"), "denial")
        push = await ub.expect(roster_push("u35@localhost", subscription="none"), "ask cleared")
        self.assertIsNone(push.find(f"{NS_ROSTER}query/{NS_ROSTER}item").get("ask"))

    async def test_second_resource_sees_waiting_request(self):  # issue 4, A8
        ua = await self.login("u11@localhost/one", gateway=1)
        ua.send_raw("<presence type='subscribe' to='u12@localhost'/>")
        await ua.expect(roster_push("u12@localhost", ask="subscribe"), "ask")
        first = await self.login("u12@localhost/first", gateway=2)
        await first.expect(presence("subscribe", frm="u11@localhost"), "request at first login")
        second = await self.login("u12@localhost/second", gateway=1)
        await second.expect(presence("subscribe", frm="u11@localhost"), "request at second resource")
        await first.expect_none(presence("subscribe"), "duplicate to the first resource", 0.5)

    async def test_connected_only_resource_gets_pushes_not_requests(self):  # checklist 58
        quiet = await self.login("u13@localhost/quiet", gateway=2, presence=False)
        ua = await self.login("u14@localhost/one", gateway=1)
        ua.send_raw("<presence type='subscribe' to='u13@localhost'/>")
        await ua.expect(roster_push("u13@localhost", ask="subscribe"), "ask")
        await quiet.expect_none(presence("subscribe"), "request at a non-available resource", 1.0)
        quiet.send_raw("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>"
                       "<item jid='u14@localhost' name='Friend'/></query></iq>")
        await quiet.expect(roster_push("u14@localhost", name="Friend"), "push to interested resource")

    async def test_set_pushes_to_interested_resources_only(self):  # checklist 17, 28
        one = await self.login("u25@localhost/one", gateway=1)
        two = await self.login("u25@localhost/two", gateway=2)
        never = await self.login("u25@localhost/never", gateway=2, roster=False)
        mark = one.mark()
        one.send_raw("<iq type='set' id='p1'><query xmlns='jabber:iq:roster'>"
                     "<item jid='u26@localhost' name='Pal'/></query></iq>")
        await one.expect(iq_result("p1"), "result of the set")
        one.rewind(mark)  # the push and the result may come in either order
        pushes = []
        for c in (one, two):
            pushes.append(await c.expect(roster_push("u26@localhost", name="Pal"), "push"))
        for push in pushes:
            self.assertIn(push.get("from"), (None, "u25@localhost"))  # §2.1.6
        await never.expect_none(roster_push("u26@localhost"), "push to a resource without roster get")
        self.assertEqual(never.count(roster_push("u26@localhost")), 0)
        self.assertEqual(one.count(roster_push("u26@localhost")), 1)  # one push each, not more

        # An error reply to a push is ignored: nothing comes back, the session keeps working.
        one.send_raw(f"<iq type='error' id='{pushes[0].get('id')}'><query xmlns='jabber:iq:roster'/>"
                     "<error type='cancel'><service-unavailable "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        await one.expect_none(lambda e: e.tag == NS_CLIENT + "iq" and e.get("type") == "error",
                              "answer to an error reply", 1.0)
        one.send_raw("<iq type='set' id='p2'><query xmlns='jabber:iq:roster'>"
                     "<item jid='u26@localhost' name='Still'/></query></iq>")
        await one.expect(iq_result("p2"), "later set still answered")
        await two.expect(roster_push("u26@localhost", name="Still"), "later push")

    async def test_consistency_tool_heals_an_interrupted_request(self):  # issue 4, issue 7
        ua = await self.login("u27@localhost/one", gateway=1)
        ua.send_raw("<presence type='subscribe' to='u28@localhost'/>")
        await ua.expect(roster_push("u28@localhost", ask="subscribe"), "ask")
        # The flow's second per-user step is lost, as if the roster service died between the
        # two: u27 is left with a stuck ask, u28 knows nothing.
        self.cluster.redis_cli("HDEL", "{u28@localhost}:roster", "u27@localhost")
        self.cluster.redis_cli("HDEL", "{u28@localhost}:pending", "u27@localhost")

        rc, out = await asyncio.to_thread(self.cluster.admin_status, "roster", "check",
                                          "u27@localhost")
        self.assertEqual(rc, 3, out)
        self.assertIn("u27@localhost\tu28@localhost\t", out)
        self.assertIn("1 disagreements, 0 repaired", out)

        rc, out = await asyncio.to_thread(self.cluster.admin_status, "roster", "check",
                                          "localhost", "--repair")
        self.assertEqual(rc, 0, out)
        self.assertIn("1 disagreements, 1 repaired", out)
        # Healed: the contact gets the request at login, and a new check finds nothing.
        ub = await self.login("u28@localhost/two", gateway=2)
        await ub.expect(presence("subscribe", frm="u27@localhost"), "replayed request")
        rc, out = await asyncio.to_thread(self.cluster.admin_status, "roster", "check", "localhost")
        self.assertEqual(rc, 0, out)
        self.assertIn("0 disagreements", out)
        ub.send_raw("<presence type='subscribed' to='u27@localhost'/>")
        await ua.expect(roster_push("u28@localhost", subscription="to"), "approved after repair")

    async def test_roster_errors_over_the_wire(self):  # checklist 18, 20, 22
        ua = await self.login("u15@localhost/one", gateway=1)
        ua.send_raw("<iq type='set' id='e1'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/>"
                    "<item jid='y@localhost'/></query></iq>")
        await ua.expect(iq_error("e1", "bad-request"), "bad-request")
        ua.send_raw("<iq type='set' id='e2' to='u16@localhost'><query xmlns='jabber:iq:roster'>"
                    "<item jid='x@localhost'/></query></iq>")
        await ua.expect(iq_error("e2", "forbidden"), "forbidden")
        ua.send_raw("<iq type='set' id='e3'><query xmlns='jabber:iq:roster'>"
                    "<item jid='nobody@localhost' subscription='remove'/></query></iq>")
        await ua.expect(iq_error("e3", "item-not-found"), "item-not-found")
        ua.send_raw("<iq type='set' id='e4'><query xmlns='jabber:iq:roster'>"
                    "<item jid='x@localhost'><group>g</group><group>g</group></item></query></iq>")
        await ua.expect(iq_error("e4", "bad-request"), "duplicate group")
        ua.send_raw("<iq type='set' id='e5'><query xmlns='jabber:iq:roster'>"
                    "<item jid='x@localhost'><group/></item></query></iq>")
        await ua.expect(iq_error("e5", "not-acceptable"), "empty group")

    async def test_roster_set_then_subscribe_in_order(self):  # checklist 13
        ua = await self.login("u17@localhost/one", gateway=1)
        ua.send_raw("<iq type='set' id='o1'><query xmlns='jabber:iq:roster'>"
                    "<item jid='u18@localhost' name='Eighteen'><group>G</group></item></query></iq>"
                    "<presence type='subscribe' to='u18@localhost'/>")
        await ua.expect(roster_push("u18@localhost", name="Eighteen", subscription="none"), "set push")
        push = await ua.expect(roster_push("u18@localhost", ask="subscribe"), "subscribe push")
        item = push.find(f"{NS_ROSTER}query/{NS_ROSTER}item")
        self.assertEqual(item.get("name"), "Eighteen")
        self.assertEqual(item.findtext(f"{NS_ROSTER}group"), "G")

    async def test_queued_subscriptions_keep_their_order(self):  # RFC 6120 §10.1
        # One write: the gateway sends the four subscription requests to the roster service
        # together; they must take effect exactly as if processed one by one.
        ua = await self.login("u37@localhost/one", gateway=1)
        ua.send_raw("<presence type='subscribe' to='u38@localhost'/>"
                    "<presence type='unsubscribe' to='u38@localhost'/>"
                    "<presence type='subscribe' to='u39@localhost'/>"
                    "<presence type='subscribe' to='u38@localhost'/>"
                    "<iq type='get' id='q37'><query xmlns='jabber:iq:roster'/></iq>")
        await ua.expect(roster_push("u38@localhost", subscription="none", ask="subscribe"), "1st")
        await ua.expect(roster_push("u38@localhost", subscription="none", ask=None), "cancelled")
        await ua.expect(roster_push("u39@localhost", subscription="none", ask="subscribe"), "3rd")
        await ua.expect(roster_push("u38@localhost", subscription="none", ask="subscribe"), "4th")
        result = await ua.expect(iq_result("q37"), "roster after the four")
        items = {i.get("jid"): i.get("ask") for i in result.iter(f"{NS_ROSTER}item")}
        self.assertEqual(items, {"u38@localhost": "subscribe", "u39@localhost": "subscribe"})
        ub = await self.login("u38@localhost/two", gateway=2)
        await ub.expect(presence("subscribe", frm="u37@localhost"), "the request waiting")

    async def test_versioned_roster_get(self):  # checklist 25, 26
        ua = await self.login("u19@localhost/one", gateway=1)
        for i in range(3):
            ua.send_raw(f"<iq type='set' id='v{i}'><query xmlns='jabber:iq:roster'>"
                        f"<item jid='c{i}@localhost'/></query></iq>")
            await ua.expect(iq_result(f"v{i}"), "set result")
        await asyncio.sleep(0.3)
        ua.skip_received()
        ua.send_raw("<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver=''/></iq>")
        full = await ua.expect(iq_result("g1"), "full roster")
        ver = full.find(NS_ROSTER + "query").get("ver")
        self.assertEqual(len(full.findall(f"{NS_ROSTER}query/{NS_ROSTER}item")), 3)
        ua.send_raw(f"<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>")
        same = await ua.expect(iq_result("g2"), "empty result")
        self.assertIsNone(same.find(NS_ROSTER + "query"))
        older = str(int(ver) - 1)
        ua.send_raw(f"<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='{older}'/></iq>")
        await ua.expect(iq_result("g3"), "empty result")
        push = await ua.expect(roster_push("c2@localhost"), "interim push")
        self.assertEqual(push.find(NS_ROSTER + "query").get("ver"), ver)

    async def test_admin_roster_change_reaches_live_sessions(self):  # issue 4
        ua = await self.login("u23@localhost/one", gateway=2)
        out = await asyncio.to_thread(self.cluster.admin, "roster", "set", "u23@localhost",
                                      "boss@localhost", "The Boss", "Work")
        self.assertIn("ok", out)
        push = await ua.expect(roster_push("boss@localhost", name="The Boss"), "admin push")
        self.assertEqual(push.findtext(f"{NS_ROSTER}query/{NS_ROSTER}item/{NS_ROSTER}group"), "Work")
        listed = await asyncio.to_thread(self.cluster.admin, "roster", "list", "u23@localhost")
        self.assertIn("boss@localhost\tnone\tThe Boss", listed)
        await asyncio.to_thread(self.cluster.admin, "roster", "remove", "u23@localhost", "boss@localhost")
        await ua.expect(roster_push("boss@localhost", subscription="remove"), "admin remove push")

    async def test_spoofed_from_is_overwritten(self):  # checklist 11, 46
        ua, ub = await self.pair("u20", "u21")
        ua.send_raw("<message to='u21@localhost/two' from='u22@localhost/evil' type='chat'>"
                    "<body>hi</body></message>")
        msg = await ub.expect(lambda e: e.tag == NS_CLIENT + "message", "message")
        self.assertEqual(msg.get("from"), "u20@localhost/one")
        ua.send_raw("<presence type='subscribe' to='u21@localhost' from='u22@localhost/evil'/>")
        req = await ub.expect(presence("subscribe"), "request")
        self.assertEqual(req.get("from"), "u20@localhost")


if __name__ == "__main__":
    unittest.main()
