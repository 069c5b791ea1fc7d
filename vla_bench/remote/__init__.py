"""Remote policies over openpi's websocket policy protocol: the wire codec, observation presets, a
client connection, the `remote` policy's options and the `vla-bench serve` server."""
