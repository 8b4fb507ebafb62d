mix = ping:1
ping_bytes = 64
