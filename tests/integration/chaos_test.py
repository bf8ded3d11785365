"""Bounded chaos: kill -9 one process in the middle of a stream of subscription handshakes.

Two replicas of the roster service and of the presence router (clients balance round_robin),
three gateways, Redis with AOF fsync on every write. For each fault, pairs of users run the
RFC 6121 §3.1 handshake (subscribe, approve on receipt) and send requests to offline contacts
while the fault happens. Afterwards:
  * every handshake a client saw acknowledged (the requester got `subscribed`) is in both
    rosters (to on one side, from on the other);
  * every request a client saw acknowledged (the ask push) to an offline contact is delivered
    when the contact logs in;
  * the cluster serves a new login within a bound;
  * for a killed gateway, every contact of its users receives `unavailable`.
Each scenario prints attempted / acknowledged / verified / lost and fails on any loss.
A longer run outside the test command: tools/chaos/soak.sh.
"""
import asyncio
import os
import signal
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from xmpp_harness import ClusterTestCase, presence, roster_push

# Pairs per scenario; the soak command (tools/chaos/soak.sh) raises it.
PAIRS = int(os.environ.get("XC_CHAOS_PAIRS", "10"))
SCENARIOS = ("roster", "router", "gateway", "redis")
LOGIN_BOUND_S = 10.0


def scenario_users(tag):
    return ([f"{tag}a{i}" for i in range(PAIRS)] + [f"{tag}b{i}" for i in range(PAIRS)]
            + [f"{tag}c{i}" for i in range(PAIRS)] + [f"{tag}late"])


class ChaosTest(ClusterTestCase):
    gateways = 3
    replicas = 2
    redis_flags = ("--appendfsync", "always")
    users = tuple(u for tag in SCENARIOS for u in scenario_users(tag)) + (
        "gv1", "gv2", "gw1", "gw2", "down1", "down2")

    def readyz(self, name):
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.cluster.admin_ports[name]}/readyz", timeout=3) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def health(self, port):
        out = subprocess.run([os.path.join(self.cluster.bin_dir, "xc-admin"), "health",
                              f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=15)
        return out.stdout.strip() or out.stderr.strip()

    def restart_redis(self):
        self.cluster.kill("redis")
        self.cluster._start_redis()

    def roster_of(self, user):
        """{contact: subscription[+ask]} through the admin tool (the roster service)."""
        out = self.cluster.admin("roster", "list", f"{user}@localhost")
        items = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                items[parts[0]] = parts[1]
        return items

    async def handshake(self, a, b, ajid, bjid, acked):
        a.send_raw(f"<presence type='subscribe' to='{bjid}'/>")
        try:
            await b.expect(presence("subscribe", frm=ajid), f"{bjid} gets the request", 6)
        except AssertionError:
            return
        b.send_raw(f"<presence type='subscribed' to='{ajid}'/>")
        try:
            await a.expect(presence("subscribed", frm=bjid), f"{ajid} gets subscribed", 6)
        except AssertionError:
            return
        acked.append((ajid, bjid))

    async def offline_request(self, a, ajid, cjid, acked):
        a.send_raw(f"<presence type='subscribe' to='{cjid}'/>")
        try:
            await a.expect(roster_push(cjid, ask="subscribe"), f"ask push for {cjid}", 6)
        except AssertionError:
            return
        acked.append((ajid, cjid))

    async def run_scenario(self, tag, fault, recover, client_gateways=(1, 2)):
        pairs = []
        for i in range(PAIRS):
            ga = client_gateways[i % len(client_gateways)]
            gb = client_gateways[(i + 1) % len(client_gateways)]
            a = await self.login(f"{tag}a{i}@localhost/r", gateway=ga)
            b = await self.login(f"{tag}b{i}@localhost/r", gateway=gb)
            pairs.append((a, b, f"{tag}a{i}@localhost", f"{tag}b{i}@localhost"))
        handshakes, requests = [], []

        async def stream():
            tasks = []
            for i, (a, b, ajid, bjid) in enumerate(pairs):
                tasks.append(asyncio.ensure_future(self.handshake(a, b, ajid, bjid, handshakes)))
                tasks.append(asyncio.ensure_future(
                    self.offline_request(a, ajid, f"{tag}c{i}@localhost", requests)))
                await asyncio.sleep(0.08)
            await asyncio.gather(*tasks)

        async def inject():
            await asyncio.sleep(0.3)  # mid-stream
            fault()

        await asyncio.gather(stream(), inject())
        recover()

        # New logins are served within a bound.
        start = time.monotonic()
        while True:
            try:
                late = await self.login(f"{tag}late@localhost/r", gateway=client_gateways[0])
                break
            except (AssertionError, asyncio.TimeoutError):
                if time.monotonic() - start > LOGIN_BOUND_S:
                    self.fail(f"{tag}: no login served within {LOGIN_BOUND_S} s of the fault")
                await asyncio.sleep(0.5)
        login_s = time.monotonic() - start
        late.disconnect()

        verified, lost = 0, []
        for ajid, bjid in handshakes:
            a_side = self.roster_of(ajid.split("@")[0]).get(bjid, "")
            b_side = self.roster_of(bjid.split("@")[0]).get(ajid, "")
            if a_side.split("+")[0] in ("to", "both") and b_side.split("+")[0] in ("from", "both"):
                verified += 1
            else:
                lost.append(f"handshake {ajid}->{bjid}: {a_side!r} / {b_side!r}")
        for i, (ajid, cjid) in enumerate(requests):
            c = await self.login(f"{cjid}/r", gateway=client_gateways[i % len(client_gateways)],
                                 presence=False)
            c.send_raw("<presence/>")
            try:
                await c.expect(presence("subscribe", frm=ajid), f"{cjid}'s stored request", 8)
                verified += 1
            except AssertionError:
                lost.append(f"request {ajid}->{cjid} not delivered at login")
            c.disconnect()
        attempted = 2 * PAIRS
        acknowledged = len(handshakes) + len(requests)
        print(f"chaos {tag}: attempted {attempted}, acknowledged {acknowledged}, "
              f"verified {verified}, lost {len(lost)}; new login served after {login_s:.1f} s")
        self.assertEqual(lost, [], f"{tag}: acknowledged state lost")
        self.assertGreaterEqual(acknowledged, PAIRS // 2,
                                f"{tag}: too little was acknowledged to prove anything")

    async def test_kill_roster_replica(self):
        await self.run_scenario("roster", lambda: self.cluster.kill("roster2"),
                                lambda: self.cluster.start_roster(1))

    async def test_kill_router_replica(self):
        await self.run_scenario("router", lambda: self.cluster.kill("router2"),
                                lambda: self.cluster.start_router(1))

    async def test_restart_redis(self):
        await self.run_scenario("redis", self.restart_redis, lambda: None)

    async def test_kill_gateway(self):
        # Two users on gateway 3 with watchers on gateway 1 subscribed to them.
        victims = [await self.login(f"gv{i}@localhost/v", gateway=3) for i in (1, 2)]
        watchers = [await self.login(f"gw{i}@localhost/w", gateway=1) for i in (1, 2)]
        for i, (v, w) in enumerate(zip(victims, watchers), start=1):
            await self.handshake(w, v, f"gw{i}@localhost", f"gv{i}@localhost", acked := [])
            self.assertEqual(len(acked), 1)
            await w.expect(presence(None, frm=f"gv{i}@localhost/v"), "victim online")
            w.skip_received()
        await self.run_scenario("gateway", lambda: self.cluster.kill("gateway3"), lambda: None,
                                client_gateways=(1, 2))
        for i, w in enumerate(watchers, start=1):
            await w.expect(presence("unavailable", frm=f"gv{i}@localhost/v"),
                           f"gw{i} sees its contact on the killed gateway go unavailable", 10)

    async def test_redis_unreachable_gives_clear_errors_and_recovers(self):
        a = await self.login("down1@localhost/r", gateway=1)
        b = await self.login("down2@localhost/r", gateway=2)
        self.assertEqual(self.health(self.cluster.roster_ports[0]), "SERVING")
        self.cluster.kill("redis")
        try:
            a.send_raw("<presence type='subscribe' to='down2@localhost' id='x1'/>")
            err = await a.expect(lambda e: e.get("type") == "error" and e.get("id") == "x1",
                                 "a stanza error while Redis is down", 15)
            self.assertIsNotNone(err.find(
                "{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}internal-server-error"))
            for name in ("roster", "router", "roster2", "router2"):
                self.assertEqual(self.readyz(name), 503, name)
            for port in (*self.cluster.roster_ports, *self.cluster.router_ports):
                deadline = time.monotonic() + 10
                while self.health(port) != "NOT_SERVING":
                    self.assertLess(time.monotonic(), deadline, f"health of {port}")
                    await asyncio.sleep(0.3)
        finally:
            self.cluster._start_redis()
        # Back on their own: ready, SERVING, and the same request now goes through.
        deadline = time.monotonic() + 15
        while not all(self.readyz(n) == 200 for n in ("roster", "router", "roster2", "router2")):
            self.assertLess(time.monotonic(), deadline, "services did not become ready again")
            await asyncio.sleep(0.3)
        for port in (*self.cluster.roster_ports, *self.cluster.router_ports):
            deadline = time.monotonic() + 10
            while self.health(port) != "SERVING":
                self.assertLess(time.monotonic(), deadline, f"health of {port}")
                await asyncio.sleep(0.3)
        a.send_raw("<presence type='subscribe' to='down2@localhost' id='x2'/>")
        await b.expect(presence("subscribe", frm="down1@localhost"), "request after recovery", 10)


if __name__ == "__main__":
    unittest.main()
