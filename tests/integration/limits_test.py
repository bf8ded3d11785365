"""Gateway limits: connections per address, time to authenticate, slow readers."""
import os
import re
import socket
import time
import unittest

from raw_stream import Raw, stream_error
from xmpp_harness import ClusterTestCase


class LimitsTest(ClusterTestCase):
    gateways = 1
    users = ("l1",)
    @classmethod
    def configure_cluster(cls, cluster):
        # The limits come from a configuration file (absl's --flagfile), as an operator sets them.
        path = os.path.join(cluster.state_dir, "gateway.flags")
        with open(path, "w") as f:
            f.write("# gateway limits\n--max_connections_per_ip=5\n--pre_auth_timeout_s=2\n"
                    "--max_stanza_bytes=8192\n")
        cluster.gateway_flags.append(f"--flagfile={path}")

    def test_connections_per_ip(self):
        held = [Raw(self.port(1)) for _ in range(5)]
        for r in held:
            self.addCleanup(r.close)
            r.open()
        extra = Raw(self.port(1))
        self.addCleanup(extra.close)
        extra.read_until(stream_error("policy-violation"))
        self.assertTrue(extra.closed())
        for r in held:
            r.close()
        time.sleep(2.5)  # the sweep frees the slots
        again = Raw(self.port(1))
        self.addCleanup(again.close)
        again.open()

    def test_unauthenticated_stream_times_out(self):
        r = Raw(self.port(1))
        self.addCleanup(r.close)
        r.open()
        r.read_until(stream_error("connection-timeout"), timeout=6)
        self.assertTrue(r.closed())

    def test_oversize_stanza_after_auth(self):
        r = Raw(self.port(1))
        self.addCleanup(r.close)
        r.login("l1")
        r.send("<message to='l1@localhost'><body>" + "y" * 9000 + "</body></message>")
        r.read_until(stream_error("policy-violation"))

    def test_a_burst_of_stanzas_is_read_as_it_is_processed(self):
        # 400 roster gets in one write (~28 KB), more than a session may hold queued (256): the
        # gateway stops reading while the session has a backlog, so TCP holds the rest, every
        # request is answered in order and the stream stays up.
        r = Raw(self.port(1))
        self.addCleanup(r.close)
        r.login("l1")
        n = 400
        r.send("".join(f"<iq type='get' id='g{i}'><query xmlns='jabber:iq:roster'/></iq>"
                       for i in range(n)))
        r.read_until(f"id=['\"]g{n - 1}['\"]", timeout=30)
        answered = re.findall(r"<iq[^>]*\bid=['\"](g\d+)['\"]", r.buffer)
        self.assertEqual(answered, [f"g{i}" for i in range(n)])
        self.assertNotIn("policy-violation", r.buffer)


if __name__ == "__main__":
    unittest.main()
