"""Cross-silo mode: one Ray per organisation, protocol messages between the parties'
processes over mutual TLS, in a typed wire format (no pickle from peers).

- `certs`: party identities (`TLS`) and a development PKI (`cipherray certs`);
- `wire`: the message format and its checks (`Expect`, `WireError`);
- `he_wire`: Paillier public keys and ciphertext arrays in that format (validated);
- `expect`: what a receiving step expects of a runtime message (`check_value`, `Like`),
  checked by the receiving party before any step uses the value;
- `copier`, `buffers`: the thread that copies a large message's chunks into its buffer,
  and the reused buffers of large messages;
- `transport`: one gRPC endpoint per party (`Transport.send` / `recv`, acknowledgements,
  re-sending, timeouts and failure broadcast).

This package does not import Ray; the runtime routes a step's messages through a
`Transport` when the receiving party runs in another organisation's process.
"""

from cipherray.runtime.silo.certs import TLS, make_dev_pki
from cipherray.runtime.silo.wire import CipherBytes, Expect

__all__ = ["TLS", "CipherBytes", "Expect", "make_dev_pki"]


def __getattr__(name: str):
    if name == "Transport":  # imports grpc: only when asked for
        from cipherray.runtime.silo.transport import Transport

        return Transport
    raise AttributeError(name)
