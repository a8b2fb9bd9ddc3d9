#!/usr/bin/env python3
"""How long a resumed primary takes writes before its lease watchdog fences it.

Run inside a frozen pod's network namespace (`ip netns exec cnr-... stale-writes.py PORT`, password in
REDISCLI_AUTH) *before* the pod is thawed: the connection lands in the listen backlog of the stopped
server and the first AUTH + DEL wait in its socket, like a client that was connected when the pod froze.
Once the pod runs again it keeps sending `DEL` of a key that never exists (a write that changes nothing)
one at a time and prints, on one line:

    writable=N window_ms=W end=REASON

N writes were answered as a primary answers them; W is the time from the first answer to the refusal
(NOREPLICAS or READONLY) or the closed connection that ended them; REASON says which. Prints "connected"
first, once the connection is queued, so that the caller knows when to thaw.
"""
import os
import socket
import sys
import time

DEADLINE_S = float(os.environ.get("STALE_WRITES_DEADLINE", "60"))


def command(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def reply(stream) -> bytes:
    line = stream.readline()
    if not line:
        raise EOFError("connection closed")
    return line.rstrip(b"\r\n")


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6379
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
    stream = sock.makefile("rb")
    password = os.environ.get("REDISCLI_AUTH", "")
    probe = command("DEL", "cnredis:probe:never")
    sock.sendall((command("AUTH", password) if password else b"") + probe)
    print("connected", flush=True)
    end, writable, first, last = "deadline", 0, None, None
    started = time.monotonic()
    try:
        if password:
            answer = reply(stream)
            first = time.monotonic()
            if not answer.startswith(b"+OK"):
                end = "auth:" + answer.decode(errors="replace")
                raise StopIteration
        while time.monotonic() - started < DEADLINE_S:
            answer = reply(stream)
            last = time.monotonic()
            first = first or last
            if answer.startswith(b":"):
                writable += 1
                sock.sendall(probe)
                continue
            end = answer.decode(errors="replace").split(" ")[0].lstrip("-")
            break
    except (EOFError, ConnectionError) as error:
        last = time.monotonic()
        # The server closing the connection: an orderly close, or a reset when it closed with our next
        # command unread (a fence disconnects clients) — both end the window.
        closed = isinstance(error, (EOFError, ConnectionResetError, BrokenPipeError))
        end = "closed" if closed else type(error).__name__
    except StopIteration:
        pass
    window = 0 if first is None or last is None else round((last - first) * 1000)
    print(f"writable={writable} window_ms={window} end={end}", flush=True)
    # Only a refusal or a closed connection measured the window; an AUTH failure or the deadline did not,
    # and must not pass as a window of 0.
    return 0 if end in ("NOREPLICAS", "READONLY", "closed") else 1


if __name__ == "__main__":
    sys.exit(main())
