"""A hand-driven XMPP client stream over a raw socket, for negotiation and error-path tests."""
import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import time

from xmpp_harness import PASSWORD

HEADER = ("<stream:stream to='{to}' version='1.0' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams'{extra}>")


class Raw:
    """A hand-driven client stream."""

    def __init__(self, port, direct_tls=False, sock=None):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = ""
        if direct_tls:
            self._wrap()

    def _wrap(self, max_version=None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if max_version:
            context.maximum_version = max_version
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def starttls(self, max_version=None):
        """Negotiates STARTTLS and opens the new stream; returns its features."""
        self.open()
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.read_until(r"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self._wrap(max_version)
        self.open()
        return self.buffer

    def peer_certificate(self):
        return self.sock.getpeercert(binary_form=True)

    def scram(self, user, password=PASSWORD, sha="sha256", flag="n", plus=None, cb_data=None):
        """SCRAM (RFC 5802) by hand: `plus` is a channel-binding type ('tls-unique') for the
        -PLUS mechanism, `flag` the gs2 flag otherwise; `cb_data` overrides the binding data.
        Returns the server's final answer (<success .../> or <failure .../>)."""
        mech = "SCRAM-SHA-256" if sha == "sha256" else "SCRAM-SHA-1"
        gs2 = f"{flag},,"
        if plus:
            mech += "-PLUS"
            gs2 = f"p={plus},,"
            if cb_data is None:
                cb_data = self.sock.get_channel_binding(plus)
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n={user},r={cnonce}"
        b64 = lambda b: base64.b64encode(b).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mech}'>"
                  f"{b64((gs2 + first_bare).encode())}</auth>")
        m = self.read_until(r"<(challenge|failure)[^>]*>(.*?)</\1>")
        if m.group(1) == "failure":
            return m.group(0)
        server_first = base64.b64decode(m.group(2)).decode()
        fields = dict(kv.split("=", 1) for kv in server_first.split(","))
        salted = hashlib.pbkdf2_hmac(sha, password.encode(), base64.b64decode(fields["s"]),
                                     int(fields["i"]))
        client_key = hmac.new(salted, b"Client Key", sha).digest()
        stored_key = hashlib.new(sha, client_key).digest()
        cbind = gs2.encode() + (cb_data if plus else b"")
        without_proof = f"c={b64(cbind)},r={fields['r']}"
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, sha).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.send(f"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                  f"{b64((without_proof + ',p=' + b64(proof)).encode())}</response>")
        return self.read_until(r"<success[^>]*(/>|>.*?</success>)|<failure.*?</failure>").group(0)

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
