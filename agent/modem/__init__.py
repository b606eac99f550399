"""The modem layer: sans-IO codecs (PDU, AT), an async Modem over a transport, vendor profiles."""
