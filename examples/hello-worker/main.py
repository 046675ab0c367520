"""c2d's sample worker: a background process with no port and no hostname.

It prints a numbered line every TICK_SECONDS (default 1), which `c2d logs`
shows, and stops cleanly on SIGTERM. With CRASH_AFTER=N it exits with code
3 after N seconds, to show a worker crash-looping.
"""
import os
import signal
import sys
import time


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    every = float(os.environ.get("TICK_SECONDS", "1"))
    crash_after = float(os.environ.get("CRASH_AFTER", "0"))
    started = time.monotonic()
    print("hello-worker started", flush=True)
    n = 0
    while True:
        n += 1
        print(f"tick {n}", flush=True)
        if crash_after and time.monotonic() - started >= crash_after:
            print("crashing on purpose (CRASH_AFTER)", flush=True)
            sys.exit(3)
        time.sleep(every)


if __name__ == "__main__":
    main()
