"""
A small multi-host network for the fault suite, built from network
namespaces (root only): one bridge in the root namespace and one namespace
per host (each replica, the Kafka broker, PostgreSQL, Redis, the model
server), joined to the bridge by veth pairs, with addresses in the lab's own
10.231.0.0/24.  Traffic stays between the lab's namespaces and the test
driver, which is the bridge's address (10.231.0.1) in the root namespace
(psql, redis-cli, kcat and `sluice produce` reach the servers from there;
nothing is routed or forwarded elsewhere).

Faults:
  partition(a, b) / heal(a, b)  a and b silently lose each other's packets
      (each namespace gets a permanent neighbour entry for the other's
      address pointing at a MAC nobody owns: the bridge floods the frames
      and no one takes them).  Needs only iproute2, so it works without
      nftables/iptables; nothing else is cut.
  isolate(h) / rejoin(h)        h's veth down: cut from everyone
  netem(h, spec)                `tc qdisc ... netem spec` on both ends of
      h's link (raises Skip when the kernel lacks sch_netem)

Servers run inside their namespace through scripts/services with
SLUICE_HOST (the namespace's address) and SLUICE_RUN (a private state
directory under the scenario's log directory).  Everything is named with
the prefix "slnl-" and removed by close(), which Lab() registers with the
scenario's cleanups.  One lab at a time per machine: Lab() waits for the
lock LOCK (held until close(), released by the kernel if the process
dies), so whatever carries the prefix once it has the lock is a crashed
run's leftover (namespaces, links, the processes inside those
namespaces), removed first.
"""
import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time

from faultlib import ROOT, Fail, Skip, log, wait_for

PREFIX = "slnl-"
BRIDGE = PREFIX + "br"
NET = "10.231.0."  # the lab's own /24
DRIVER = NET + "1"  # the bridge: the test driver in the root namespace
SERVICES = os.path.join(ROOT, "scripts", "services")
NOBODY_MAC = "02:00:00:5e:ff:fe"  # locally administered, owned by no one
LOCK = "/tmp/sluice-netlab.lock"
LOCK_WAIT_S = 900

# host -> last octet; replicas are r0, r1, ... (21 + i)
FIXED = {"pg": 11, "redis": 12, "kafka": 13, "model": 14}
PORTS = {"postgres": 5432, "redis": 6379, "kafka": 9092}
SERVER_HOST = {"postgres": "pg", "redis": "redis", "kafka": "kafka"}


def _run(argv, check=True, timeout=60, quiet=False, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env)
    if check and p.returncode != 0:
        raise Fail("%s failed (exit %d): %s" % (
            " ".join(argv), p.returncode, (p.stderr or p.stdout).strip()))
    if p.returncode != 0 and not quiet:
        log("note: %s: %s" % (" ".join(argv), p.stderr.strip()))
    return p


def require():
    """Skip (with the missing piece) unless namespaces can be built here."""
    if os.geteuid() != 0:
        raise Skip("needs root (network namespaces, veth, a bridge)")
    for tool in ("ip", "tc"):
        if not shutil.which(tool):
            raise Skip("%s (iproute2) not found" % tool)


def _namespaces():
    p = _run(["ip", "-o", "netns", "list"], check=False, quiet=True)
    return [ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()]


def _ns_pids(ns):
    p = _run(["ip", "netns", "pids", ns], check=False, quiet=True)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def _kill_ns_processes(ns, grace):
    """SIGTERM the processes inside 'ns', SIGKILL what is left after
    'grace' seconds.  Only processes inside the lab's own namespaces."""
    pids = _ns_pids(ns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = _ns_pids(ns)
        if not pids:
            return


def _lock():
    """The lab lock (another run's lab is in use while someone holds it)."""
    f = open(LOCK, "a")
    deadline = time.monotonic() + LOCK_WAIT_S
    waited = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.close()
                raise Fail("netlab: %s still locked after %d s (another "
                           "run's lab)" % (LOCK, LOCK_WAIT_S))
            if not waited:
                log("netlab: waiting for another run's lab (%s)" % LOCK)
                waited = True
            time.sleep(0.5)


def remove_leftovers():
    """Remove every namespace and link named with the lab's prefix (a
    previous run that crashed before its cleanup)."""
    for ns in _namespaces():
        if ns.startswith(PREFIX):
            log("netlab: removing leftover namespace %s" % ns)
            _kill_ns_processes(ns, 5)
            _run(["ip", "netns", "del", ns], check=False)
    p = _run(["ip", "-o", "link", "show"], check=False, quiet=True)
    for ln in p.stdout.splitlines():
        name = ln.split(":")[1].strip().split("@")[0] if ":" in ln else ""
        if name.startswith(PREFIX):
            _run(["ip", "link", "del", name], check=False)


class Lab:
    """
    The network of one scenario: hosts named in 'hosts' ("pg", "redis",
    "kafka", "model", "r0", "r1", ...).  Registers close() with sc.cleanups.
    """

    def __init__(self, sc, hosts):
        require()
        self.sc = sc
        self.dir = os.path.join(sc.dir, "netlab")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)  # PostgreSQL runs as 'postgres'
        self.hosts = list(hosts)
        self.servers = []  # (server, env) started, for close()
        self.lock = _lock()
        remove_leftovers()
        sc.cleanups.append(self.close)
        sc.own_servers = True
        self._build()

    # ---- addresses and commands ------------------------------------------

    def addr(self, host):
        if host in FIXED:
            return NET + str(FIXED[host])
        if host.startswith("r") and host[1:].isdigit():
            return NET + str(21 + int(host[1:]))
        raise ValueError("netlab: unknown host %r" % host)

    @staticmethod
    def ns(host):
        return PREFIX + host

    def prefix(self, host):
        """argv prefix that runs a command inside 'host'."""
        return ["ip", "netns", "exec", self.ns(host)]

    def _build(self):
        t0 = time.monotonic()
        p = _run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=False)
        if p.returncode != 0:
            raise Skip("cannot create a bridge: %s" % p.stderr.strip())
        _run(["ip", "addr", "add", DRIVER + "/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        for h in self.hosts:
            ns, veth = self.ns(h), PREFIX + h
            _run(["ip", "netns", "add", ns])
            p = _run(["ip", "link", "add", veth, "type", "veth", "peer",
                      "name", "eth0", "netns", ns], check=False)
            if p.returncode != 0:
                raise Skip("cannot create a veth pair (kernel without veth?): "
                           "%s" % p.stderr.strip())
            _run(["ip", "link", "set", veth, "master", BRIDGE])
            _run(["ip", "link", "set", veth, "up"])
            _run(["ip", "-n", ns, "addr", "add", self.addr(h) + "/24", "dev",
                  "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # the bridge forwards once its ports are up (no STP: no delay)
        for h in self.hosts:
            wait_for(lambda h=h: self._reachable(h), 10,
                     "netlab: %s reachable" % h, interval=0.05)
        log("netlab: %d namespaces on %s (%s) in %.1f s" %
            (len(self.hosts), BRIDGE, ", ".join(
                "%s %s" % (h, self.addr(h)) for h in self.hosts),
             time.monotonic() - t0))

    def _reachable(self, host):
        """The driver can open a TCP connection to host (refused counts: it
        means the packets got there)."""
        import socket
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect((self.addr(host), 9))
            return True
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        finally:
            s.close()

    # ---- servers ------------------------------------------------------------

    def _services_env(self, server):
        e = dict(os.environ)
        host = SERVER_HOST[server]
        e.update({"SLUICE_HOST": self.addr(host),
                  "SLUICE_RUN": os.path.join(self.dir, "run-" + server),
                  "SLUICE_PG_PORT": str(PORTS["postgres"]),
                  "SLUICE_REDIS_PORT": str(PORTS["redis"]),
                  "SLUICE_KAFKA_PORT": str(PORTS["kafka"])})
        return e

    def start_servers(self, *servers):
        """
        Start 'servers' ("postgres", "redis", "kafka") in their namespaces,
        in parallel, through scripts/services.  Returns {server: (addr,
        port)}; faultlib.use_servers() points the helpers at them.
        """
        t0 = time.monotonic()
        procs, errs = {}, []
        for s in servers:
            env = self._services_env(s)
            os.makedirs(env["SLUICE_RUN"], exist_ok=True)
            self.servers.append((s, env))
            logf = open(os.path.join(self.dir, "services-%s.log" % s), "wb")
            procs[s] = subprocess.Popen(
                self.prefix(SERVER_HOST[s]) + [SERVICES, "start", s], env=env,
                stdout=logf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)

        def waiter(s, p):
            if p.wait(300) != 0:
                with open(os.path.join(self.dir, "services-%s.log" % s)) as f:
                    errs.append("%s: %s" % (s, f.read().strip()[-600:]))
        ts = [threading.Thread(target=waiter, args=kv) for kv in procs.items()]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errs:
            raise Fail("netlab: starting servers failed: " + " | ".join(errs))
        log("netlab: %s up in %.1f s" % (", ".join(
            "%s on %s:%d" % (s, self.addr(SERVER_HOST[s]), PORTS[s])
            for s in servers), time.monotonic() - t0))
        return {s: (self.addr(SERVER_HOST[s]), PORTS[s]) for s in servers}

    # ---- faults -------------------------------------------------------------

    def _neigh(self, host, peer, on):
        ns = self.ns(host)
        if on:
            _run(["ip", "-n", ns, "neigh", "replace", self.addr(peer),
                  "lladdr", NOBODY_MAC, "dev", "eth0", "nud", "permanent"])
        else:
            _run(["ip", "-n", ns, "neigh", "del", self.addr(peer), "dev",
                  "eth0"], check=False)

    def partition(self, a, b):
        """a and b stop hearing each other (packets silently dropped both
        ways; no RST, no ICMP: like a cable pulled between two zones)."""
        for x, y in ((a, b), (b, a)):
            self._neigh(x, y, True)
        log("netlab: partition %s <-/-> %s" % (a, b))

    def heal(self, a, b):
        for x, y in ((a, b), (b, a)):
            self._neigh(x, y, False)
        log("netlab: healed %s <-> %s" % (a, b))

    def isolate(self, host):
        _run(["ip", "link", "set", PREFIX + host, "down"])
        log("netlab: %s isolated (link down)" % host)

    def rejoin(self, host):
        _run(["ip", "link", "set", PREFIX + host, "up"])
        log("netlab: %s rejoined" % host)

    def netem(self, host, spec):
        """
        'spec' (e.g. "delay 50ms 10ms loss 2%") on both directions of
        host's link: the root-side veth (towards host) and host's eth0.
        """
        if shutil.which("modprobe"):  # a modular kernel: load it first
            _run(["modprobe", "sch_netem"], check=False, quiet=True)
        for argv in (["tc", "qdisc", "add", "dev", PREFIX + host, "root",
                      "netem"] + spec.split(),
                     ["ip", "netns", "exec", self.ns(host), "tc", "qdisc",
                      "add", "dev", "eth0", "root", "netem"] + spec.split()):
            p = _run(argv, check=False, quiet=True)
            if p.returncode != 0:
                err = p.stderr.strip()
                if "unknown" in err.lower():
                    rel = os.uname().release
                    mods = "/lib/modules/" + rel
                    raise Skip(
                        "the kernel lacks the netem qdisc (sch_netem: tc "
                        "says '%s'; kernel %s, %s); slow/lossy links cannot "
                        "be simulated here" % (
                            err, rel, "no %s to load it from" % mods
                            if not os.path.isdir(mods) else
                            "modprobe sch_netem did not provide it"
                            if shutil.which("modprobe") else
                            "no modprobe (kmod) to load it"))
                raise Fail("%s: %s" % (" ".join(argv), err))
        log("netlab: netem %s on %s's link (both directions)" % (spec, host))

    # ---- teardown -----------------------------------------------------------

    def close(self):
        t0 = time.monotonic()
        for s, env in self.servers:  # data removed; pg shut down cleanly
            try:
                # Its own state directory and ports: without them services
                # would stop the servers of the checkout (the run's own).
                _run(self.prefix(SERVER_HOST[s]) + [SERVICES, "stop", s],
                     check=False, timeout=90, env=env)
            except subprocess.TimeoutExpired:
                log("netlab: stopping %s timed out" % s)
            # as_pg's alternative directory for PostgreSQL, if one was made
            link = os.path.join(env["SLUICE_RUN"], "postgres")
            if os.path.islink(link):
                shutil.rmtree(os.path.realpath(link), ignore_errors=True)
        for h in self.hosts:
            _kill_ns_processes(self.ns(h), 10)
            _run(["ip", "netns", "del", self.ns(h)], check=False)
        for h in self.hosts:
            if os.path.exists("/sys/class/net/" + PREFIX + h):
                _run(["ip", "link", "del", PREFIX + h], check=False,
                     quiet=True)  # may go with its namespace meanwhile
        _run(["ip", "link", "del", BRIDGE], check=False)
        left = [n for n in _namespaces() if n.startswith(PREFIX)]
        if left:
            log("netlab: namespaces left after close: %s" % left)
        self.lock.close()  # releases the flock
        log("netlab: removed in %.1f s" % (time.monotonic() - t0))
