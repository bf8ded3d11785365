"""The whole cluster scaled out: a Redis Cluster of 3 masters (Debian's redis-server), two
replicas each of the roster service and the presence router (clients balance round_robin),
three gateways. Users' keys spread over the masters; the subscription flows, offline requests,
the waiting-request census and the consistency tool work exactly as on one Redis, with every
replica serving part of the traffic."""
import asyncio
import re
import subprocess
import unittest
import urllib.request

from xmpp_harness import ClusterTestCase, presence, roster_push

USERS = tuple(f"k{i}" for i in range(1, 13))


class RedisClusterFlowsTest(ClusterTestCase):
    redis_cluster = 3
    gateways = 3
    replicas = 2
    users = USERS

    def node_cli(self, port, *args):
        out = subprocess.run(["redis-cli", "-p", str(port), "--no-auth-warning", "--user", "admin",
                              "--pass", self.cluster.redis_passwords["admin"], *args],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def counter_sum(self, admin_name, metric):
        port = self.cluster.admin_ports[admin_name]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(m) for m in re.findall(rf"^{metric}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def census(self):
        port = self.cluster.admin_ports["roster"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^xc_roster_waiting_requests (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    async def wait_census(self, expected):
        for _ in range(60):
            if self.census() == expected:
                return
            await asyncio.sleep(0.2)
        self.fail(f"census {self.census()}, expected {expected}")

    def test_users_spread_over_every_master(self):
        for port in self.cluster.redis_ports:
            self.assertIn("cluster_state:ok", self.node_cli(port, "cluster", "info"))
            keys = int(self.node_cli(port, "dbsize"))
            self.assertGreater(keys, 0, f"no key on the master at {port}")

    async def test_handshakes_across_gateways_and_masters(self):
        clients = {}
        for i, user in enumerate(USERS[:6]):
            clients[user] = await self.login(f"{user}@localhost/r", gateway=i % 3 + 1)
        # A ring of requests: each user asks the next; each approves on receipt.
        for i, user in enumerate(USERS[:6]):
            contact = USERS[(i + 1) % 6]
            clients[user].send_raw(f"<presence type='subscribe' to='{contact}@localhost'/>")
        for i, user in enumerate(USERS[:6]):
            asker = USERS[(i - 1) % 6]
            await clients[user].expect(presence("subscribe", frm=f"{asker}@localhost"),
                                       f"{user} gets {asker}'s request")
            clients[user].send_raw(f"<presence type='subscribed' to='{asker}@localhost'/>")
        for i, user in enumerate(USERS[:6]):
            contact = USERS[(i + 1) % 6]
            await clients[user].expect(roster_push(f"{contact}@localhost", subscription="to"),
                                       f"{user}'s push for {contact}")
            await clients[user].expect(presence(None, frm=f"{contact}@localhost/r"),
                                       f"{user} sees {contact} online")
        # Every roster agrees on both sides (the tool reads each user's slot on its master).
        status, out = self.cluster.admin_status("roster", "check", "localhost")
        self.assertEqual(status, 0, out)
        # Both replicas of each service took part.
        for name in ("roster", "roster2"):
            self.assertGreater(self.counter_sum(name, "xc_roster_requests_total"), 0, name)
        for name in ("router", "router2"):
            self.assertGreater(self.counter_sum(name, "grpc_server_handled_total"), 0, name)

    async def test_offline_requests_wait_on_their_masters_and_arrive_at_login(self):
        sender = await self.login("k7@localhost/s", gateway=1)
        for target in USERS[7:12]:
            sender.send_raw(f"<presence type='subscribe' to='{target}@localhost'/>")
        for target in USERS[7:12]:
            await sender.expect(roster_push(f"{target}@localhost", ask="subscribe"), target)
        await self.wait_census(5.0)  # five requests, SCANned over the three masters
        for i, target in enumerate(USERS[7:12]):
            c = await self.login(f"{target}@localhost/t", gateway=i % 3 + 1)
            await c.expect(presence("subscribe", frm="k7@localhost"), f"{target}'s stored request")
            c.send_raw("<presence type='unsubscribed' to='k7@localhost'/>")
        await self.wait_census(0.0)


if __name__ == "__main__":
    unittest.main()
