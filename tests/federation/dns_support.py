"""A DNS server for tests: UDP on 127.0.0.1, answering SRV and A records of made-up names
from its tables, NXDOMAIN for every other name. It notes each question it was asked."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

#: The TTL of every answer.
TTL_S = 60


class TestDnsServer(asyncio.DatagramProtocol):
    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        #: name -> [(priority, weight, port, target)]
        self.srv: dict[str, list[tuple[int, int, int, str]]] = {}
        #: name -> [IPv4 address]
        self.a: dict[str, list[str]] = {}
        #: (name, type) of each question, in the order asked.
        self.asked: list[tuple[str, str]] = []
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self._transport.get_extra_info("sockname")[1]

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def address(self) -> str:
        """The `IP:port` of this server, as `federation.dns_servers` lists it."""
        return f"127.0.0.1:{self.port}"

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # not a DNS message: no answer
            return
        response = dns.message.make_response(query)
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            kind = dns.rdatatype.to_text(question.rdtype)
            self.asked.append((name, kind))
            if kind == "SRV" and name in self.srv:
                texts = [f"{priority} {weight} {port} {target}" for priority, weight, port, target in self.srv[name]]
            elif kind == "A" and name in self.a:
                texts = self.a[name]
            elif name in self.srv or name in self.a:
                continue  # the name exists, without records of this type
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            response.answer.append(dns.rrset.from_text_list(question.name, TTL_S, "IN", kind, texts))
        assert self._transport is not None
        self._transport.sendto(response.to_wire(), addr)
