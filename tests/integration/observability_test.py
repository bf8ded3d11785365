"""Every process serves Prometheus text on its admin port; the series move with real traffic.

PrometheusTest runs a real Prometheus (Debian's package) with the checked-in alert rules against
the live cluster, lints every /metrics with promtool, and checks that every metric the Grafana
dashboard and the alert rules query is one the services really export.
"""
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from xmpp_harness import ClusterTestCase, presence, roster_push
from local_cluster import free_port, wait_for_port  # noqa: E402 (path set by xmpp_harness)

MONITORING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                          "monitoring")


def scrape(port, path="/metrics"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


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
        self.assertEqual(value(gw1, "xc_gateway_stanzas_in_total", kind="presence",
                               type="subscribe"), 1)
        self.assertGreaterEqual(value(gw1, "xc_gateway_stanzas_in_total", kind="presence",
                                      type="available"), 1)
        self.assertGreaterEqual(value(gw1, "xc_gateway_stanzas_in_total", kind="iq", type="get"), 1)
        _, gw2 = scrape(ports["gateway2"])
        self.assertEqual(value(gw2, "xc_gateway_stanzas_out_total", kind="presence",
                               type="subscribe"), 1)
        self.assertEqual(value(gw2, "xc_gateway_stanzas_in_total", kind="presence",
                               type="subscribed"), 1)
        self.assertIsNotNone(value(gw1, "xc_gateway_backend_seconds_count", method="HandleSubscription"))
        self.assertEqual(value(roster, "xc_roster_requests_total", type="subscribe"), 1)
        self.assertEqual(value(roster, "xc_roster_requests_total", type="subscribed"), 1)
        self.assertGreaterEqual(value(roster, "xc_roster_effects_total", kind="push"), 3)
        # The gateways batch their sessions' inputs: the two subscription stanzas reach the roster
        # service in HandleBatch calls, and its effects reach the router in DispatchBatch calls.
        self.assertGreaterEqual(value(roster, "grpc_server_handled_total", grpc_service="xmpp.roster.v1.RosterService",
                                      grpc_method="HandleBatch", grpc_code="OK"), 2)
        self.assertGreaterEqual(value(router, "grpc_server_handled_total",
                                      grpc_service="xmpp.presence.v1.PresenceRouter",
                                      grpc_method="DispatchBatch", grpc_code="OK"), 2)
        self.assertGreaterEqual(value(gw1, "xc_gateway_backend_batch_inputs_count", service="roster"), 1)
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
            # Every gRPC request served and every answer received reached the loop through
            # Execute, one way or the other.
            handed = [value(text, f"{prefix}_loop_executes_total", path=p) for p in ("inline", "posted")]
            self.assertNotIn(None, handed, prefix)
            self.assertGreater(sum(handed), 0, prefix)
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


# PromQL words that are not metric names.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "histogram_quantile", "abs", "absent", "clamp_min", "clamp_max", "time",
    "vector", "scalar", "label_replace", "sort", "sort_desc", "inf", "nan", "e",
}
FROM_PROMETHEUS = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def metric_names(expr):
    """(plain names, __name__ regexes) a PromQL expression selects."""
    regexes = re.findall(r'__name__=~"([^"]+)"', expr)
    text = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r'"[^"]*"', " ", text)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if m.group(0) in PROMQL_WORDS or re.match(r"^\d", m.group(0)):
            continue
        names.add(m.group(0))
    return names, regexes


def exported_names(text):
    """Every sample name a /metrics page exports, including empty families' (# TYPE)."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names.update(m.group(1) + s for s in ("_bucket", "_count", "_sum"))
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m:
            names.add(m.group(1))
    return names


class PrometheusTest(ClusterTestCase):
    """A real Prometheus scrapes the running cluster and evaluates the alert rules."""

    users = ("p1", "p2")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prom_dir = tempfile.mkdtemp(prefix="prometheus", dir=os.environ.get("TEST_TMPDIR"))
        ports = cls.cluster.admin_ports
        jobs = {"xc-roster": [ports["roster"]], "xc-router": [ports["router"]],
                "xc-gateway": [p for name, p in ports.items() if name.startswith("gateway")]}
        rules = os.path.join(cls.prom_dir, "alerts.rules.yaml")
        shutil.copy(os.path.join(MONITORING, "alerts.rules.yaml"), rules)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules],
            "scrape_configs": [
                {"job_name": job, "static_configs": [
                    {"targets": [f"127.0.0.1:{p}" for p in job_ports]}]}
                for job, job_ports in jobs.items()],
        }
        config_path = os.path.join(cls.prom_dir, "prometheus.yml")
        with open(config_path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        cls.prom_port = free_port()
        cls.prom_log = open(os.path.join(cls.prom_dir, "prometheus.log"), "w")
        cls.prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config_path}",
             f"--storage.tsdb.path={os.path.join(cls.prom_dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{cls.prom_port}", "--log.level=warn"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(cls.prom_port, cls.prometheus, what="prometheus")
            deadline = time.monotonic() + 30
            while scrape(cls.prom_port, "/-/ready")[0] != 200:  # 503 while the TSDB opens
                if time.monotonic() > deadline:
                    raise RuntimeError("prometheus did not become ready")
                time.sleep(0.2)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.prometheus.terminate()
        try:
            cls.prometheus.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.prometheus.kill()
        cls.prom_log.close()
        super().tearDownClass()

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def query(self, promql):
        """{frozenset(labels.items()): value} of an instant query."""
        data = self.api("query", query=promql)
        return {frozenset(s["metric"].items()): float(s["value"][1]) for s in data["result"]}

    async def eventually(self, promql, check, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if check(result):
                return result
            if time.monotonic() > deadline:
                self.fail(f"{what}: {promql} -> {result}")
            await asyncio.sleep(0.5)

    async def test_queries_return_the_cluster_series_and_alerts_evaluate(self):
        await self.eventually("up", lambda r: len(r) == 4 and all(v == 1 for v in r.values()),
                              "every process scraped")
        a = await self.login("p1@localhost/a", gateway=1)
        b = await self.login("p2@localhost/b", gateway=2)
        a.send_raw("<presence type='subscribe' to='p2@localhost'/>")
        await b.expect(presence("subscribe"), "request")
        # The request waits in Redis until p2 answers: the census gauge sees it.
        await self.eventually("max(xc_roster_waiting_requests)",
                              lambda r: list(r.values()) == [1.0], "one waiting request")
        b.send_raw("<presence type='subscribed' to='p1@localhost'/>")
        await a.expect(roster_push("p2@localhost", subscription="to"), "push")
        await self.eventually("sum(xc_gateway_sessions)", lambda r: list(r.values()) == [2.0],
                              "two sessions over two gateways")
        await self.eventually(
            'sum by (direction) (xc_roster_subscription_transitions_total{verb="subscribed"})',
            lambda r: sorted(dict(k)["direction"] for k in r) == ["inbound", "outbound"],
            "subscribed transitions both ways")
        await self.eventually("max(xc_roster_waiting_requests)",
                              lambda r: list(r.values()) == [0.0], "the request answered")
        await self.eventually('count by (job) (grpc_server_handled_total{grpc_code="OK"})',
                              lambda r: {dict(k)["job"] for k in r} >= {"xc-roster", "xc-router"},
                              "gRPC server metrics of both services")
        await self.eventually(
            "histogram_quantile(0.99, sum by (le) (rate(xc_gateway_backend_seconds_bucket[1m])))",
            lambda r: len(r) == 1, "gateway->service latency quantile")

        # Every alert rule loads and evaluates against the live series without error.
        groups = self.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        self.assertGreaterEqual(len(rules), 8)
        for rule in rules:
            self.assertEqual(rule["health"], "ok", rule)
        self.assertEqual(self.query('ALERTS{alertname="XcGatewayDown"}'), {})

        # A gateway dies: its target goes down and XcGatewayDown becomes pending for it.
        self.cluster.kill("gateway2")
        await self.eventually('ALERTS{alertname="XcGatewayDown", alertstate="pending"}',
                              lambda r: len(r) == 1, "gateway-down alert pending")

    def test_promtool_accepts_every_metrics_page(self):
        for name, port in self.cluster.admin_ports.items():
            status, text = scrape(port)
            if status != 200:
                continue  # a gateway killed by the other test
            out = subprocess.run(["promtool", "check", "metrics"], input=text,
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, f"{name}: {out.stdout}{out.stderr}")

    def test_dashboard_and_alerts_query_exported_metrics(self):
        exported = set(FROM_PROMETHEUS)
        for name, port in self.cluster.admin_ports.items():
            status, text = scrape(port)
            if status == 200:
                exported |= exported_names(text)
        with open(os.path.join(MONITORING, "grafana-dashboard.json")) as f:
            board = json.load(f)
        queries = [(f"panel '{p['title']}'", t["expr"]) for p in board["panels"]
                   for t in p.get("targets", [])]
        groups = self.api("rules")["groups"]
        queries += [(f"alert {r['name']}", r["query"]) for g in groups for r in g["rules"]]
        self.assertGreater(len(queries), 20)
        for where, expr in queries:
            names, regexes = metric_names(expr)
            self.assertTrue(names or regexes, f"{where}: no metric found in {expr}")
            for name in names:
                if name not in exported:
                    self.fail(f"{where} queries {name}, which nothing exports")
            for regex in regexes:
                self.assertTrue(any(re.fullmatch(regex, n) for n in exported),
                                f"{where}: {regex} matches no exported metric")

    def test_metric_name_extraction(self):
        self.assertEqual(metric_names(
            'histogram_quantile(0.99, sum by (le, method) (rate(x_seconds_bucket{a="b"}[5m])))'),
            ({"x_seconds_bucket"}, []))
        self.assertEqual(metric_names('sum(a_total) / on (job) b > bool 5'), ({"a_total", "b"}, []))
        self.assertEqual(metric_names('rate({__name__=~"xc_.*_total"}[1m])')[1], ["xc_.*_total"])


if __name__ == "__main__":
    unittest.main()
