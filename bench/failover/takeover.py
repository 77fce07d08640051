#!/usr/bin/env python3
"""Takeover, resync and giveback of a real two-node hafs pair (docs/performance.md, "Failover").

Each trial starts two hafsd processes with [membership] on this machine (node 1 home of vol1,
node 2 of vol2; the NV logs and mirrors on /dev/shm, the volumes on an ext4 directory under
--work-parent, the membership records on /dev/shm), and then:

  1. writes --staged-mib MiB of 1 MiB O_DSYNC writes into vol1 through node 1's mount (staged in
     node 1's NV log and mirrored into node 2; destage is held off), while a probe writes 4 KiB
     O_DSYNC blocks into vol2 through node 2's mount all along;
  2. kill -9 of node 1; takeover time = kill until node 2's status shows vol1 served at a higher
     epoch (polled every 10 ms), with the phases node 2 logged (replay, destage); the largest
     probe write latency around the kill is the survivor's own client-visible write stall;
  3. checks the takeover lost nothing: vol1's file read through node 2's mount has the checksum
     of what was written;
  4. writes --resync-mib MiB into vol2 through node 2 (degraded: not mirrored), restarts node 1,
     and times the resync (node 1 started until node 2's mirror is back in sync), with the rate
     node 2 reports;
  5. giveback of vol1 on command: time from `hafsctl giveback vol1` until node 1 serves it (the
     client-visible pause of vol1: node 2 stops serving it first).

Defaults are hafsd's own (lease 2000 ms, margin 250, settle 250, tick 500, partner silence
2000 ms, interconnect silence limit 1000 ms) unless --set passes others to both nodes.

Needs root (FUSE), a built hafsd and hafsctl (--build-dir), python3. Removes everything it made
(mounts, processes it started, /dev/shm files, work directory), also on failure or Ctrl-C.

Usage: bench/failover/takeover.py [--build-dir DIR] [--trials N] [--staged-mib N]
                                  [--resync-mib N] [--work-parent DIR] [--set KEY=VALUE]...
                                  [--json FILE]
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, bench, node_id):
        self.bench, self.id = bench, node_id
        w = bench.work
        self.mount = f"{w}/mnt{node_id}"
        self.socket = f"{w}/node{node_id}.sock"
        self.nvlog = f"{bench.shm}/node{node_id}.nvlog"
        self.mirror = f"{bench.shm}/node{node_id}.mirror"
        self.log_path = f"{w}/node{node_id}.log"
        self.port = bench.ports[node_id - 1]
        self.proc = None
        os.makedirs(self.mount, exist_ok=True)

    def args(self):
        b = self.bench
        partner = 3 - self.id
        a = [b.hafsd, "--node-id", str(self.id), "--mount", self.mount, "--nvlog", self.nvlog,
             "--nvlog-size", b.nvlog_size, "--nvlog-mode", "pmem", "--log-level", "info",
             "--volume", f"vol1:1:{b.medium}/vol1:staged:1", "--volume", f"vol2:2:{b.medium}/vol2:staged:2",
             "--set", f'control_socket="{self.socket}"',
             "--set", "nvlog.destage_interval_ms=60000",
             "--set", f"interconnect.partner_node_id={partner}",
             "--set", f"interconnect.listen=127.0.0.1:{self.port}",
             "--set", f"interconnect.partner=127.0.0.1:{b.ports[partner - 1]}",
             "--set", "interconnect.key=takeover-bench",
             "--set", f'interconnect.mirror_path="{self.mirror}"',
             "--set", f'membership.dir="{b.members}"',
             "--set", "membership.auto_giveback=false"]
        for kv in b.sets:
            a += ["--set", kv]
        return a

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log)
        log.close()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        subprocess.run(["fusermount3", "-uz", self.mount], capture_output=True)

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        subprocess.run(["fusermount3", "-uz", self.mount], capture_output=True)

    def status(self):
        r = subprocess.run([self.bench.hafsctl, "--socket", self.socket, "--timeout", "2", "status", "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def volume(self, name):
        s = self.status()
        if not s:
            return {}
        for v in s.get("volumes", []):
            if v.get("name") == name:
                return v
        return {}

    def ctl(self, *args):
        return subprocess.run([self.bench.hafsctl, "--socket", self.socket, "--timeout", "120", *args],
                              capture_output=True, text=True)


def wait_for(what, pred, limit_s, poll_s=0.01, nodes=()):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        for nd in nodes:
            if nd.proc is not None and nd.proc.poll() is not None:
                raise RuntimeError(f"node {nd.id} exited ({nd.proc.returncode}) while waiting for {what}: "
                                   + open(nd.log_path).read()[-2000:])
        time.sleep(poll_s)
    raise RuntimeError(f"timed out after {limit_s} s waiting for {what}")


class Probe(threading.Thread):
    """Writes 4 KiB O_DSYNC blocks into one file all along; keeps each write's start and latency."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.samples, self.stop_flag, self.error = path, [], False, None

    def run(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_DSYNC, 0o644)
            buf = os.urandom(4096)
            i = 0
            while not self.stop_flag:
                t = time.monotonic()
                os.pwrite(fd, buf, (i % 256) * 4096)
                self.samples.append((t, time.monotonic() - t))
                i += 1
            os.close(fd)
        except OSError as e:
            self.error = e

    def max_latency(self, since, until):
        lat = [d for t, d in self.samples if since <= t + d and t <= until]
        return max(lat) if lat else float("nan")


def write_file(path, mib, seed):
    """mib MiB of 1 MiB O_DSYNC writes; returns the sha256 of what was written."""
    block = bytearray(os.urandom(MiB))
    h = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DSYNC, 0o644)
    try:
        for i in range(mib):
            block[0:16] = f"{seed:08d}{i:08d}".encode()
            os.write(fd, block)
            h.update(block)
    finally:
        os.close(fd)
    return h.hexdigest()


def sha_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


class Bench:
    def __init__(self, opts):
        self.hafsd = os.path.join(opts.build_dir, "tools", "hafsd")
        self.hafsctl = os.path.join(opts.build_dir, "tools", "hafsctl")
        for b in (self.hafsd, self.hafsctl):
            if not os.access(b, os.X_OK):
                sys.exit(f"takeover.py: no {b}: build hafsd and hafsctl first (cmake --build {opts.build_dir})")
        self.opts = opts
        self.sets = opts.set or []
        mib = max(opts.staged_mib, opts.resync_mib)
        self.nvlog_size = f"{max(64, 2 * mib + 64)}MiB"

    def trial(self, n):
        o = self.opts
        self.work = tempfile.mkdtemp(prefix="hafs-takeover.", dir=o.work_parent)
        self.shm = tempfile.mkdtemp(prefix="hafs-takeover.", dir="/dev/shm")
        self.medium = f"{self.work}/medium"
        self.members = f"{self.shm}/members"
        for d in (f"{self.medium}/vol1", f"{self.medium}/vol2", self.members):
            os.makedirs(d)
        self.ports = [free_port(), free_port()]
        nodes = [Node(self, 1), Node(self, 2)]
        probe = None
        try:
            for nd in nodes:
                nd.start()
            wait_for("both nodes NORMAL", lambda: all(
                (s := nd.status()) and s["membership"]["state"] == "NORMAL" for nd in nodes), 60, 0.05, nodes)
            n1, n2 = nodes
            wait_for("vol1 served by node 1", lambda: n1.volume("vol1").get("state") == "serving", 30, 0.05)
            wait_for("vol2 served by node 2", lambda: n2.volume("vol2").get("state") == "serving", 30, 0.05)

            probe = Probe(f"{n2.mount}/vol2/probe.dat")
            probe.start()
            t = time.monotonic()
            digest = write_file(f"{n1.mount}/vol1/staged.dat", o.staged_mib, n)
            write_s = time.monotonic() - t
            st = n1.status()
            staged = st["nvlog"]["staged_bytes"]
            if st["mirror"]["lag_bytes"] != 0:
                raise RuntimeError("mirror lag after the writes: " + json.dumps(st["mirror"]))
            epoch1 = n1.volume("vol1")["epoch"]

            killed = time.monotonic()
            n1.kill9()
            served = wait_for("vol1 served by node 2", lambda: (v := n2.volume("vol1")).get("state") == "serving"
                              and v.get("epoch", 0) > epoch1, 60, 0.01)
            takeover_s = served - killed
            time.sleep(0.5)  # let the probe show the stall's end (measured, not synchronised on)
            stall_s = probe.max_latency(killed - 0.1, time.monotonic())
            phases = n2.status()["membership"].get("last_takeover") or {}
            if sha_of(f"{n2.mount}/vol1/staged.dat") != digest:
                raise RuntimeError("vol1's data after the takeover differs from what was written")

            # Resync: node 2 writes unmirrored (node 1 is down), then node 1 returns.
            write_file(f"{n2.mount}/vol2/resync.dat", o.resync_mib, n + 1000)
            n1.start()
            started = time.monotonic()
            wait_for("node 1 back (its control socket answers)", lambda: n1.status() is not None, 60, 0.01)
            in_sync = wait_for("node 2's mirror in sync", lambda: (s := n2.status())
                               and s["mirror"]["state"] == "mirroring" and not s["mirror"]["degraded"], 120, 0.01)
            resync = n2.status()["mirror"]["resync"]
            resync_s = in_sync - started

            # Giveback of vol1, on command: node 2 releases (flushes), node 1 serves.
            wait_for("both nodes NORMAL", lambda: all(
                (s := nd.status()) and s["membership"]["state"] == "NORMAL" for nd in nodes), 60, 0.02)
            asked = time.monotonic()
            r = n2.ctl("giveback", "vol1")
            if r.returncode != 0:
                raise RuntimeError("giveback: " + r.stdout + r.stderr)
            back = wait_for("vol1 served by node 1 again", lambda: n1.volume("vol1").get("state") == "serving", 60, 0.01)
            giveback_s = back - asked
            if probe.error:
                raise RuntimeError(f"probe write failed: {probe.error}")
            return {"trial": n, "staged_bytes": staged, "write_s": write_s, "takeover_s": takeover_s,
                    "stall_s": stall_s, "replay_ms": phases.get("replay_ms"), "destage_ms": phases.get("destage_ms"),
                    "replayed_bytes": phases.get("replayed_bytes"), "resync_s": resync_s,
                    "resync_bytes": resync.get("bytes_total"), "resync_rate": resync.get("rate_bytes_per_s"),
                    "giveback_s": giveback_s}
        finally:
            if probe:
                probe.stop_flag = True
                probe.join(timeout=30)
            for nd in nodes:
                nd.stop()
            if getattr(self.opts, "keep_logs", False):
                print(f"logs kept in {self.work}", file=sys.stderr)
            else:
                shutil.rmtree(self.work, ignore_errors=True)
            shutil.rmtree(self.shm, ignore_errors=True)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--staged-mib", type=int, default=256)
    ap.add_argument("--resync-mib", type=int, default=256)
    ap.add_argument("--work-parent", default="/var/tmp")
    ap.add_argument("--set", action="append", help="KEY=VALUE for both nodes' hafsd (repeatable)")
    ap.add_argument("--json", help="write every trial's figures to this file")
    ap.add_argument("--keep-logs", action="store_true")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("takeover.py: run as root (hafsd mounts FUSE)")
    # SIGTERM unwinds like Ctrl-C, so that a trial's clean-up (stop hafsd, unmount) runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("takeover.py: terminated"))
    bench = Bench(opts)
    rows = []
    print(f"{opts.trials} trials, {opts.staged_mib} MiB staged, {opts.resync_mib} MiB to resync; "
          f"settings: {opts.set or 'defaults'}; load {open('/proc/loadavg').read().split()[:3]}")
    print(f"{'trial':>5} {'takeover s':>10} {'replay ms':>9} {'stall s':>8} {'resync s':>8} {'resync MiB/s':>12} "
          f"{'giveback s':>10}")
    for n in range(1, opts.trials + 1):
        r = bench.trial(n)
        rows.append(r)
        print(f"{n:>5} {r['takeover_s']:>10.3f} {r['replay_ms'] or 0:>9} {r['stall_s']:>8.3f} {r['resync_s']:>8.3f} "
              f"{(r['resync_rate'] or 0) / MiB:>12.0f} {r['giveback_s']:>10.3f}", flush=True)
    print()
    for key, label in [("takeover_s", "takeover (kill -9 -> served), s"), ("replay_ms", "  of it: replay, ms"),
                       ("stall_s", "survivor's largest write stall, s"), ("resync_s", "resync (return -> in sync), s"),
                       ("giveback_s", "giveback pause (command -> served), s")]:
        vals = [r[key] for r in rows if r[key] is not None]
        print(f"{label:<40} p50 {pct(vals, 50):8.3f}  p90 {pct(vals, 90):8.3f}  max {max(vals):8.3f}")
    rates = [r["resync_rate"] / MiB for r in rows if r["resync_rate"]]
    if rates:
        print(f"{'resync rate, MiB/s':<40} p50 {statistics.median(rates):8.0f}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
