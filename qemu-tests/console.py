#!/usr/bin/env python3
"""Drive a guest's serial console like a person, expect-style.

    console.py SOCKET LOG DIALOG

Connects to QEMU's serial port (`-serial unix:SOCKET,server=on,wait=on`),
copies everything the guest prints to LOG (the console log run.sh watches)
and plays DIALOG, one step a line:

    timeout SECONDS   the limit for the expects that follow (default 300)
    expect REGEX      wait for REGEX (Python syntax, matched over the output
                      since the previous match; CR removed)
    send TEXT         type TEXT and Enter (one character at a time, as a
                      person would: busybox login flushes early input)
    # ...             a comment

When every step passed it writes `HOST-DIALOG done` to LOG; a step that
times out writes `HOST-DIALOG FAIL line N: ...` and the output seen since
the last match (run.sh rejects that marker). It then keeps copying the
console until QEMU closes the socket.
"""
import os
import re
import socket
import sys
import time


def main():
    sock_path, log_path, dialog_path = sys.argv[1:4]
    steps = []
    with open(dialog_path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            verb, _, arg = line.partition(" ")
            if verb not in ("timeout", "expect", "send"):
                sys.exit(f"{dialog_path}:{n}: unknown step {verb!r}")
            steps.append((n, verb, arg))

    s = None
    for _ in range(600):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
            break
        except OSError:
            s.close()
            s = None
            time.sleep(0.1)
    if s is None:
        sys.exit(f"cannot connect to {sock_path}")
    log = open(log_path, "ab", buffering=0)
    seen = ""  # output since the previous match, CR removed
    eof = False

    def pump(wait):
        nonlocal seen, eof
        s.settimeout(wait)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return
        except OSError:
            data = b""
        if not data:
            eof = True
            return
        log.write(data)
        seen += data.decode("utf-8", "replace").replace("\r", "")

    def note(text):
        log.write(f"\nHOST-DIALOG {text}\n".encode())

    limit = 300.0
    failed = False
    for n, verb, arg in steps:
        if verb == "timeout":
            limit = float(arg)
        elif verb == "send":
            for ch in arg + "\r":
                s.sendall(ch.encode())
                time.sleep(0.02)
        elif verb == "expect":
            rx = re.compile(arg)
            end = time.monotonic() + limit
            m = rx.search(seen)
            while m is None and not eof and time.monotonic() < end:
                pump(0.5)
                m = rx.search(seen)
            if m is None:
                tail = seen[-1500:]
                why = "console closed" if eof else f"not seen within {limit:.0f} s"
                note(f"FAIL line {n}: expect {arg!r}: {why}; seen since the last match:\n{tail}")
                failed = True
                break
            seen = seen[m.end():]
    if not failed:
        note("done")
    while not eof:
        pump(1.0)
    log.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
