#!/usr/bin/env python3
"""Write a seed-format client log of about SIZE bytes to PATH (for
benches/analyze.sh). The mixture follows the seed's client sections: a
progress line every 1,000 connections, an EAGAIN ` Error clientfd:N, errno:11`
line every other one, and every tenth a ` RecvBuffer:` print followed by its
spill-over lines ending in garbage bytes, like the seed's client 1."""
import sys

path, size = sys.argv[1], int(sys.argv[2])
written = 0
conns, off, block = 999, 3, 0
with open(path, "wb", buffering=1 << 20) as f:
    while written < size:
        parts = []
        for _ in range(1000):
            parts.append(b"\tconnections: %d, sockfd:%d, time_used:%d\n" % (conns, conns + off, 1240 + (block * 37) % 900))
            if block % 2 == 1:
                parts.append(b"\t Error clientfd:%d, errno:11\n" % (conns + off - 1000))
                off -= 1
            if block % 10 == 5:
                parts.append(b"\t RecvBuffer:Hello Server: client --> %d\n" % (conns - 1))
                for k in (4, 5, 6, 7, 8, 9, 10):
                    parts.append(b"\tdata from %d\n" % k)
                parts.append(b"\tdata from 1\xf3\x87\xb9\x9e\n")
            conns += 1000
            block += 1
        chunk = b"".join(parts)
        f.write(chunk)
        written += len(chunk)
