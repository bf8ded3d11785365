"""Every process serves Prometheus text on its admin port; the series move with real traffic."""
import re
import subprocess
import unittest
import urllib.request

from xmpp_harness import ClusterTestCase, presence, roster_push


def scrape(port, path="/metrics"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def value(text, name, **labels):
    """The sample value of `name` with exactly these labels (None when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(4))
    return None


class ObservabilityTest(ClusterTestCase):
    users = ("o1", "o2")

    def test_redis_users_are_least_privilege(self):  # issue 8: an ACL user per service
        def cli(user, *args):
            auth = [] if user is None else ["--user", user, "--pass",
                                            self.cluster.redis_passwords[user]]
            out = subprocess.run(["redis-cli", "-p", str(self.cluster.redis_port),
                                  "--no-auth-warning", *auth, *args],
                                 capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip()

        self.assertIn("NOAUTH", cli(None, "GET", "x"))  # no anonymous access
        self.assertIn("NOPERM", cli("gateway", "HSET", "{o1@localhost}:roster", "x", "y"))
        self.assertIn("NOPERM", cli("gateway", "HSET", "{o1@localhost}:account", "x", "y"))
        self.assertIn("NOPERM", cli("router", "HSET", "{o1@localhost}:roster", "x", "y"))
        self.assertIn("NOPERM", cli("roster", "HSET", "{o1@localhost}:sess", "x", "y"))
        self.assertIn("NOPERM", cli("roster", "FLUSHALL"))
        self.assertIn("NOPERM", cli("router", "KEYS", "*"))
        self.assertRegex(cli("roster", "HLEN", "{o1@localhost}:roster"), r"^\d+$")
        self.assertEqual(cli("gateway", "EXISTS", "{o1@localhost}:account"), "1")

    async def test_metrics_follow_a_subscription(self):
        a = await self.login("o1@localhost/a", gateway=1)
        b = await self.login("o2@localhost/b", gateway=2)
        a.send_raw("<presence type='subscribe' to='o2@localhost'/>")
        await b.expect(presence("subscribe"), "request")
        b.send_raw("<presence type='subscribed' to='o1@localhost'/>")
        await a.expect(roster_push("o2@localhost", subscription="to"), "push")
        ports = self.cluster.admin_ports
        _, gw1 = scrape(ports["gateway1"])
        _, roster = scrape(ports["roster"])
        _, router = scrape(ports["router"])
        self.assertEqual(value(gw1, "xc_gateway_sessions"), 1)
        self.assertGreaterEqual(value(gw1, "xc_gateway_logins_total", result="success"), 1)
        self.assertGreaterEqual(value(gw1, "xc_gateway_stanzas_in_total", kind="presence"), 2)
        self.assertIsNotNone(value(gw1, "xc_gateway_backend_seconds_count", method="HandleSubscription"))
        self.assertEqual(value(roster, "xc_roster_requests_total", type="subscribe"), 1)
        self.assertEqual(value(roster, "xc_roster_requests_total", type="subscribed"), 1)
        self.assertGreaterEqual(value(roster, "xc_roster_effects_total", kind="push"), 3)
        self.assertGreaterEqual(value(roster, "grpc_server_handled_total", grpc_service="xmpp.roster.v1.RosterService",
                                      grpc_method="HandleSubscription", grpc_code="OK"), 2)
        self.assertGreater(value(roster, "xc_roster_redis_seconds_count"), 0)
        for verb in ("subscribe", "subscribed"):
            for direction in ("outbound", "inbound"):
                self.assertEqual(value(roster, "xc_roster_subscription_transitions_total",
                                       verb=verb, direction=direction), 1, (verb, direction))
        self.assertEqual(value(roster, "xc_roster_waiting_requests_stored_total"), 1)
        self.assertEqual(value(roster, "xc_roster_waiting_requests_cleared_total"), 1)
        self.assertGreater(value(router, "xc_router_delivered_stanzas_total"), 0)
        self.assertGreater(value(router, "xc_router_deliver_seconds_count"), 0)
        for text, prefix in ((gw1, "xc_gateway"), (roster, "xc_roster"), (router, "xc_router")):
            self.assertEqual(value(text, f"{prefix}_build_info", version="0.1.0"), 1)
            # No JID ever becomes a label.
            self.assertNotIn("@localhost", text)

    def test_health_endpoints(self):
        for name, port in self.cluster.admin_ports.items():
            self.assertEqual(scrape(port, "/livez")[0], 200, name)
            self.assertEqual(scrape(port, "/readyz")[0], 200, name)

    def test_text_format_is_well_formed(self):
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? '
                            r'(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$')
        for name, port in self.cluster.admin_ports.items():
            status, text = scrape(port)
            self.assertEqual(status, 200)
            for line in text.splitlines():
                if line.startswith("# HELP ") or line.startswith("# TYPE "):
                    continue
                self.assertRegex(line, sample, f"{name}: {line}")


if __name__ == "__main__":
    unittest.main()
