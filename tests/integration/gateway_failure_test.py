"""A gateway killed with SIGKILL, or stopped with SIGTERM: contacts learn its users left."""
import asyncio
import signal
import time
import unittest

from xmpp_harness import ClusterTestCase, presence, roster_push


class GatewayFailureTest(ClusterTestCase):
    gateways = 3
    users = ("k1", "k2", "k3", "k4")

    async def befriend(self, watcher, watched, gw_watched):
        w = await self.login(f"{watcher}@localhost/w", gateway=1)
        v = await self.login(f"{watched}@localhost/v", gateway=gw_watched)
        w.send_raw(f"<presence type='subscribe' to='{watched}@localhost'/>")
        await v.expect(presence("subscribe", frm=f"{watcher}@localhost"), "request")
        v.send_raw(f"<presence type='subscribed' to='{watcher}@localhost'/>")
        await w.expect(presence(None, frm=f"{watched}@localhost/v"), "watched presence")
        return w, v

    async def test_killed_gateway_sessions_go_unavailable(self):
        w, v = await self.befriend("k1", "k2", gw_watched=2)
        started = time.monotonic()
        self.cluster.kill("gateway2", signal.SIGKILL)
        await w.expect(presence("unavailable", frm="k2@localhost/v"), "unavailable after kill",
                       timeout=10.0)
        elapsed = time.monotonic() - started
        print(f"unavailable {elapsed:.2f}s after SIGKILL")
        # The cluster still serves new logins, on the surviving gateways.
        again = await self.login("k2@localhost/again", gateway=3)
        await w.expect(presence(None, frm="k2@localhost/again"), "new login seen")
        self.clients.remove(v)

    async def test_sigterm_drains_at_once(self):
        w, v = await self.befriend("k3", "k4", gw_watched=3)
        self.cluster.kill("gateway3", signal.SIGTERM)
        await w.expect(presence("unavailable", frm="k4@localhost/v"), "unavailable after drain",
                       timeout=3.0)
        self.clients.remove(v)


if __name__ == "__main__":
    unittest.main()
