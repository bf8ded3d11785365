"""The load generator (tools/loadgen) against a real cluster of two gateways, over STARTTLS:
every expected stanza of the workload arrives (subscriptions cross gateways, so both the Deliver
hop and the return path carry them), with SCRAM and PLAIN, in burst and paced mode; and when
stanzas do not arrive it says which, and fails."""
import json
import os
import subprocess
import unittest

from xmpp_harness import ClusterTestCase, PASSWORD


class LoadgenTest(ClusterTestCase):
    tls = True
    users = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.admin("user", "add-many", "lg", "40", "localhost", PASSWORD)
        cls.cluster.admin("user", "add-many", "pc", "30", "localhost", PASSWORD)
        cls.cluster.admin("user", "add-many", "sh", "20", "localhost", PASSWORD)

    def run_loadgen(self, *flags):
        binary = os.path.join(self.cluster.bin_dir, "xc-loadgen")
        ports = ",".join(str(p) for p in self.cluster.gateway_ports)
        out = subprocess.run([binary, f"--ports={ports}", "--tls", f"--password={PASSWORD}",
                              "--timeout_s=30", *flags],
                             capture_output=True, text=True, timeout=120)
        return out.returncode, json.loads(out.stdout.strip().splitlines()[-1]), out.stderr

    def assert_complete(self, result, users, contacts):
        self.assertEqual(result["logins"], users)
        self.assertEqual(result["handshakes"], users * contacts)
        self.assertEqual(result["handshakes_expected"], users * contacts)
        self.assertEqual(result["fanout_presences"], users * contacts)
        self.assertEqual(result["lost"], 0)
        self.assertEqual(result["failed_connections"], 0)
        self.assertGreater(result["handshakes_per_s"], 0)
        self.assertGreater(result["handshake_ms_p99"], 0)
        self.assertGreaterEqual(result["handshake_ms_p99"], result["handshake_ms_p50"])

    def test_burst_with_scram_sha256_over_tls_loses_nothing(self):
        rc, result, err = self.run_loadgen("--prefix=lg", "--users=40", "--contacts=5",
                                           "--sasl=SCRAM-SHA-256")
        self.assertEqual(rc, 0, err)
        self.assertEqual(result["mode"], "burst")
        self.assertEqual(result["sasl"], "SCRAM-SHA-256")
        self.assertTrue(result["tls"])
        self.assert_complete(result, 40, 5)

    def test_paced_with_plain_over_tls_loses_nothing(self):
        rc, result, err = self.run_loadgen("--prefix=pc", "--users=30", "--contacts=4",
                                           "--rate=200")
        self.assertEqual(rc, 0, err)
        self.assertEqual(result["mode"], "paced")
        self.assert_complete(result, 30, 4)

    def test_missing_stanzas_are_named_and_fail_the_run(self):
        # sh1..sh20 exist; with --users=25, sh21..sh25 cannot log in, and whoever subscribes to
        # them never gets an answer.
        rc, result, err = self.run_loadgen("--prefix=sh", "--users=25", "--contacts=2",
                                           "--timeout_s=5", "--print_missing=200")
        self.assertEqual(rc, 1)
        self.assertEqual(result["logins"], 20)
        self.assertGreater(result["lost"], 0)
        self.assertIn("sh21@localhost: login did not complete", err)
        self.assertIn("sh19@localhost -> sh21@localhost: no subscribed and no presence", err)
        self.assertIn("sh20@localhost: no away presence from sh21@localhost", err)


if __name__ == "__main__":
    unittest.main()
