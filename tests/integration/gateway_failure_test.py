"""A gateway killed with SIGKILL, or stopped with SIGTERM: contacts learn its users left."""
import asyncio
import signal
import subprocess
import time
import unittest

from raw_stream import Raw, stream_error
from xmpp_harness import ClusterTestCase, TcpProxy, presence, roster_push
from local_cluster import free_port  # noqa: E402 (path set by xmpp_harness)


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

    async def test_a_second_service_on_a_taken_port_fails_to_start(self):
        # gRPC's default SO_REUSEPORT would let it start and take half of the connections.
        c = self.cluster
        second = subprocess.run(c.roster_command(0, admin_port=free_port()),
                                env=c.redis_env("roster"), capture_output=True, text=True,
                                timeout=20)
        self.assertNotEqual(second.returncode, 0)
        self.assertIn(f"127.0.0.1:{c.roster_ports[0]}", second.stdout + second.stderr)
        a = await self.login("k1@localhost/after", gateway=1)  # the first one still serves
        a.send_raw("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
        await a.expect(lambda e: e.get("id") == "r2" and e.get("type") == "result", "roster")


class UnreachableGatewayTest(ClusterTestCase):
    """Issue 5: a gateway alive (heartbeating) but unreachable from the router is retried, then
    treated as gone: its sessions end with unavailable to contacts, its streams are closed, and
    it rejoins once reachable again."""
    gateways = 2
    users = ("f1", "f2")

    @classmethod
    def configure_cluster(cls, cluster):
        # The router reaches gateway 2's Deliver endpoint only through a relay the test can cut.
        cls.proxy = TcpProxy(cluster.gateway_grpc_ports[1])
        cluster.gateway_flags_by_index[1] = [f"--advertise=127.0.0.1:{cls.proxy.port}"]

    async def test_unreachable_gateway_is_fenced_then_rejoins(self):
        w = await self.login("f1@localhost/w", gateway=1)
        v = Raw(self.port(2))
        self.addCleanup(v.close)
        await asyncio.to_thread(v.login, "f2", "v")
        v.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq><presence/>")
        await asyncio.to_thread(v.read_until, r"<presence[^>]*from='f2@localhost/v'")
        w.send_raw("<presence type='subscribe' to='f2@localhost'/>")
        await asyncio.to_thread(v.read_until, r"type='subscribe'")
        v.send("<presence type='subscribed' to='f1@localhost'/>")
        await w.expect(presence(None, frm="f2@localhost/v"), "contact's presence")

        self.proxy.cut()
        started = time.monotonic()
        w.send_raw("<message to='f2@localhost/v' type='chat'><body>are you there?</body></message>")
        await w.expect(presence("unavailable", frm="f2@localhost/v"), "unavailable", timeout=10.0)
        print(f"unavailable {time.monotonic() - started:.2f}s after the cut")
        await asyncio.to_thread(v.read_until, stream_error("internal-server-error"), 10.0)

        # Reachable again: the gateway re-registers and serves new sessions.
        self.proxy.restore()
        deadline = time.monotonic() + 15
        while True:
            again = Raw(self.port(2))
            self.addCleanup(again.close)
            try:
                await asyncio.to_thread(again.login, "f2", "again")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        again.send("<presence/>")
        await w.expect(presence(None, frm="f2@localhost/again"), "presence after rejoin")


if __name__ == "__main__":
    unittest.main()
