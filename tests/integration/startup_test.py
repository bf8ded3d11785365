"""Bad configuration at startup: each service says what is wrong and exits with status 1 (not an
abort and a core dump), so that an operator reads the reason in the pod's log."""
import os
import socket
import subprocess
import unittest

from xmpp_harness import runfiles_bin_dir


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartupTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bin_dir = runfiles_bin_dir()
        # Nothing listens here: Redis being away is not a startup error (the services wait).
        cls.redis = f"--redis=127.0.0.1:{unused_port()}"

    def run_binary(self, name, *flags):
        return subprocess.run([os.path.join(self.bin_dir, name), *flags], capture_output=True,
                              text=True, timeout=60)

    def assert_refused(self, result, why):
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(why, result.stderr)
        self.assertNotIn("Check failed", result.stderr)

    def test_gateway_without_domains(self):
        self.assert_refused(self.run_binary("gateway", "--domains=", "--allow_plaintext"),
                            "--domains is empty")

    def test_gateway_without_certificate_or_plaintext(self):
        self.assert_refused(self.run_binary("gateway", "--domains=example.net", self.redis),
                            "no --tls_cert")

    def test_gateway_with_a_certificate_that_is_not_there(self):
        self.assert_refused(
            self.run_binary("gateway", "--domains=example.net", self.redis,
                            "--tls_cert=/nonexistent/cert.pem", "--tls_key=/nonexistent/key.pem"),
            "/nonexistent/cert.pem")

    def test_roster_service_with_a_bad_listen_address(self):
        self.assert_refused(self.run_binary("roster_service", "--listen=nowhere", self.redis),
                            "cannot listen on nowhere")

    def test_presence_router_with_a_bad_listen_address(self):
        self.assert_refused(self.run_binary("presence_router", "--listen=nowhere", self.redis),
                            "cannot listen on nowhere")


if __name__ == "__main__":
    unittest.main()
