"""A hand-driven XMPP client stream over a raw socket, for negotiation and error-path tests."""
import base64
import re
import socket
import time

from xmpp_harness import PASSWORD

HEADER = ("<stream:stream to='{to}' version='1.0' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams'{extra}>")


class Raw:
    """A hand-driven client stream."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = ""

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def read_until(self, pattern, timeout=5.0):
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.S)
        while True:
            m = regex.search(self.buffer)
            if m:
                return m
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} in {self.buffer!r}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                raise AssertionError(f"closed before {pattern!r}; got {self.buffer!r}")
            self.buffer += data.decode(errors="replace")

    def closed(self, timeout=5.0):
        """True when the server closes the TCP connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return True
            if not data:
                return True
            self.buffer += data.decode(errors="replace")
        return False

    def open(self, to="localhost", extra=""):
        self.buffer = ""
        self.send(HEADER.format(to=to, extra=extra))
        return self.read_until(r"</stream:features>")

    def auth(self, user, password=PASSWORD):
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")

    def login(self, user, resource="raw"):
        self.open()
        self.auth(user)
        self.read_until(r"<success")
        self.open()
        self.send(f"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{resource}</resource></bind></iq>")
        return self.read_until(r"<jid>([^<]*)</jid>").group(1)

    def close(self):
        self.sock.close()


def stream_error(condition):
    return rf"<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>.*</stream:stream>"
