# FAKE mDNS responder for tests/zeroconf.rs: what no real Avahi sends.
# It joins 224.0.0.251:5353 and answers every query, by unicast to the
# asker, with hostile messages: a compression loop, a name running past
# the packet, thousands of records, TTL 0, addresses outside the link, and
# names and TXT values with shell metacharacters. Usage: MARKER OWN_IP
import socket
import struct
import sys

marker, own_ip = sys.argv[1], sys.argv[2]


def name(n):
    out = b""
    for label in n.split("."):
        b = label.encode()[:63]
        out += bytes([len(b)]) + b
    return out + b"\0"


def rr(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def header(qid, n):
    return struct.pack(">HHHHHH", qid, 0x8400, 0, n, 0, 0)


SVC = name("_distcc._tcp.local")


def instance(i, label, ip, ttl=120, txt=b"\x06jobs=4"):
    inst = name(label + "._distcc._tcp.local")
    host = name("h%d.local" % i)
    return [
        rr(SVC, 12, ttl, inst),
        rr(inst, 33, ttl, struct.pack(">HHH", 0, 0, 3632) + host),
        rr(inst, 16, ttl, txt),
        rr(host, 1, ttl, socket.inet_aton(ip)),
    ]


def messages(qid):
    # A pointer to itself, and a name that runs past the end.
    yield header(qid, 1) + b"\xc0\x0c"
    yield header(qid, 1) + b"\x3fabc"
    # 10,000 announced answers in a short message.
    yield struct.pack(">HHHHHH", qid, 0x8400, 0, 10000, 0, 0) + rr(SVC, 12, 120, name("x._distcc._tcp.local"))
    # Thousands of services, 40 per message.
    for k in range(0, 4000, 40):
        recs = []
        for i in range(k, k + 40):
            recs += instance(i, "flood%d" % i, "10.233.0.%d" % (100 + i % 100))
        yield header(qid, len(recs)) + b"".join(recs)
    # A goodbye (TTL 0), and one outside the link.
    yield header(qid, 4) + b"".join(instance(9001, "goodbye", own_ip, ttl=0))
    yield header(qid, 4) + b"".join(instance(9002, "outside", "8.8.8.8"))
    # Shell metacharacters in the name and the TXT record.
    evil = "evil$(touch %s)`touch %s`" % (marker, marker)
    txt = b"\x30jobs=$(touch " + marker.encode()[:30].ljust(30, b"x") + b")xxxxxxxxx"
    yield header(qid, 4) + b"".join(instance(9003, evil, own_ip, txt=txt[: txt[0] + 1]))


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 5353))
mreq = socket.inet_aton("224.0.0.251") + socket.inet_aton(own_ip)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
while True:
    q, peer = s.recvfrom(9000)
    if len(q) < 12 or q[2] & 0x80:
        continue
    qid = struct.unpack(">H", q[:2])[0]
    for m in messages(qid):
        s.sendto(m, peer)
