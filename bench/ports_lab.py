"""The servers, namespaces and paths of bench/ports.py, and their cleanup.

Topology (addresses of the documentation ranges, nothing leaves the namespaces made here):

    lan ns (192.0.2.2) --veth-- machine ns (192.0.2.1; np0 10.89.0.1/16) --veth-- behind ns
    (wrk, iperf3: a LAN         |  srv guest 10.89.0.x: nginx :8080, iperf3 :5201  (198.51.100.2:
     neighbour)                 |  cli guest: a second guest on np0, clients only   nginx, iperf3)
                                |  loopback: nginx and iperf3 on the machine ns's own 127.0.0.1
    the machine's own namespace: a Docker container (nginx, iperf3) published by `docker run -p`
    the kernel's floor, in the machine ns: a plain bridge npf0 (10.90.0.1/16) with two plain
    namespaces, fsrv (10.90.0.2: nginx, iperf3) and fcli, and a hand-written nftables table
    of the fewest rules the same translations take (``FLOOR_NFT``)

One nginx serves the direct, netplumb -p, LAN and hairpin paths of the srv guest: the same
server reached with or without translation is the comparison the issue asks for, and the
stall it describes needs it (TIME_WAIT left in the guest by one path meets the other's SYNs).
Docker, loopback and the LAN baseline have their own instance of the same binary and config.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from netplumb.kernel.socklb import cgroup_root

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
IMAGE = "netplumb/busybox:test"
BIRTHDAY = "name = Albert Einstein, birthday = 14.03.1879\n" * 4
LAN_MACHINE, LAN_NEIGHBOUR, LAN_NET = "192.0.2.1", "192.0.2.2", "192.0.2.0/24"
BEHIND_MACHINE, BEHIND_SERVER, BEHIND_NET = "198.51.100.1", "198.51.100.2", "198.51.100.0/24"
FLOOR_BRIDGE, FLOOR_GW, FLOOR_SRV, FLOOR_CLI = "npf0", "10.90.0.1", "10.90.0.2", "10.90.0.3"
# translated sources of their own, as netplumb's (its NAT sources): translated to the bridge's
# address, a 127.0.0.1 connection meets the guest's TIME_WAIT of a direct one from the same
# address and port, and its SYN is dropped (PAWS; a first run of this floor had 464 SYN
# retransmits in a 1 s figure, the stall of issue 16)
FLOOR_NAT_LOCAL, FLOOR_NAT_HAIRPIN = "10.90.255.254", "10.90.255.253"
# ports: the guest serves 8080 (nginx) and 5201 (iperf3); published on 127.0.0.1 as 18080 and
# 15201 and on the LAN address as 19080 and 19201; the machine ns's own servers 38080 and
# 35201; Docker's container published on the machine's 127.0.0.1 as 28080 and 25201; the
# floor's server on 127.0.0.1 as 17080 and 17201, on the LAN address as 29080 and 29201.

# The floor: what the kernel's DNAT costs with nothing of netplumb's making in the path, the
# fewest rules that give the same translations (route_localnet on the bridge, 127/8 and
# hairpin sources translated to addresses of their own on the bridge). netplumb's own table
# is in the same namespace, so its hooks still see the floor's packets (without a rule of it
# matching): the floor is what any kernel DNAT in that namespace could give, the peer of
# issue 16's "Docker uses the same kernel DNAT there".
FLOOR_NFT = f"""
table ip npb_floor {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {LAN_MACHINE} tcp dport 29080 dnat to {FLOOR_SRV}:8080
        ip daddr {LAN_MACHINE} tcp dport 29201 dnat to {FLOOR_SRV}:5201
    }}
    chain output {{
        type nat hook output priority -100; policy accept;
        ip daddr 127.0.0.1 tcp dport 17080 dnat to {FLOOR_SRV}:8080
        ip daddr 127.0.0.1 tcp dport 17201 dnat to {FLOOR_SRV}:5201
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "{FLOOR_BRIDGE}" ip saddr 127.0.0.0/8 snat to {FLOOR_NAT_LOCAL}
        ip saddr 10.90.0.0/16 ip daddr 10.90.0.0/16 ct status dnat snat to {FLOOR_NAT_HAIRPIN}
    }}
}}
"""

# worker_processes 1: on these 2 CPUs one worker gave 33,200 requests/s connection-per-request
# at 50 connections and 109,000 keep-alive, two workers 30,900 and 104,100 (wrk takes the
# other CPU; a second worker only competes with it). backlog=4096: an ordinary backlog (busybox
# httpd's 9 overflowed at 50 connections). access_log off: no disk write per request.
NGINX_CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    default_type text/html;
    server {{
        listen {port} backlog=4096;
        root {www};
    }}
}}
"""


def run(
    *argv: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False, input=input
    )
    if check and done.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass(frozen=True)
class Where:
    """A network namespace: a named one, a process's, or the machine's own (neither)."""

    label: str
    ns: str | None = None
    pid: int | None = None

    def prefix(self) -> list[str]:
        if self.ns:
            return ["ip", "netns", "exec", self.ns]
        if self.pid:
            return ["nsenter", "-t", str(self.pid), "-n"]
        return []

    def netstat(self) -> dict[str, int]:
        """TcpExt counters of this namespace, read from /proc directly (nstat keeps one
        history file for every namespace and would subtract another's counts)."""
        if self.ns:
            text = run("ip", "netns", "exec", self.ns, "cat", "/proc/net/netstat")
        else:
            text = Path(f"/proc/{self.pid or 'self'}/net/netstat").read_text()
        lines = text.splitlines()
        for head, values in zip(lines[::2], lines[1::2], strict=False):
            if head.startswith("TcpExt:"):
                return dict(zip(head.split()[1:], map(int, values.split()[1:]), strict=True))
        return {}


@dataclass(frozen=True)
class BenchPath:
    name: str
    group: str  # "127.0.0.1", "lan" or "hairpin": whose targets it counts for
    client: Where
    server: Where
    host: str
    http_port: int
    iperf_port: int
    peer: str  # the path without translation it is held against ("" for a baseline)
    note: str = ""


@dataclass
class Lab:
    tag: str
    tmp: Path
    machine: str = ""
    lan: str = ""
    behind: str = ""
    floor_ns: list[str] = field(default_factory=list)
    container: str = ""
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    inodes: dict[int, str] = field(default_factory=dict)  # netns inode -> what it was
    paths: list[BenchPath] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # path -> why
    cgroup: Path | None = None  # the cgroup v2 root, mounted again for netplumb (see setup)

    def nginx(self, name: str, port: int, seen: Path | None = None) -> list[str]:
        """A config of its own for one server instance; the argv that starts it. ``seen``:
        where the server sees the instance's folder (a container mounts it elsewhere), with
        the www folder beside it."""
        d = self.tmp / f"nginx-{name}"
        (d / "tmp").mkdir(parents=True)
        at, www = (seen, seen.parent / "www") if seen else (d, self.tmp / "www")
        (d / "nginx.conf").write_text(NGINX_CONF.format(d=at, port=port, www=www))
        return ["/usr/sbin/nginx", "-p", str(at), "-c", f"{at}/nginx.conf", "-g", "daemon off;"]

    def servers_cmd(self, name: str, http: int, iperf: int) -> str:
        return f"iperf3 -s -p {iperf} & {shlex.join(self.nginx(name, http))} & wait"

    def spawn(self, ns: str, cmd: str) -> None:
        # its own process group: nginx's workers and the backgrounded servers die with it
        self.procs.append(
            subprocess.Popen(
                ["ip", "netns", "exec", ns, "sh", "-c", cmd],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def netns(self, name: str) -> str:
        run("ip", "netns", "add", name)
        self.inodes[os.stat(f"/run/netns/{name}").st_ino] = f"netns {name}"
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def veth(self, inner: str, addr: str, peer_addr: str, name: str) -> None:
        """A veth from the machine namespace (``addr``) to ``inner`` (``peer_addr``)."""
        m = self.machine
        run("ip", "-n", m, "link", "add", name, "type", "veth", "peer", "eth0", "netns", inner)
        run("ip", "-n", m, "addr", "add", f"{addr}/24", "dev", name)
        run("ip", "-n", inner, "addr", "add", f"{peer_addr}/24", "dev", "eth0")
        run("ip", "-n", m, "link", "set", name, "up")
        run("ip", "-n", inner, "link", "set", "eth0", "up")

    def np(self, *argv: str) -> str:
        return run("ip", "netns", "exec", self.machine, str(VENV / "netplumb"), *argv, env=self.env)

    def setup(self) -> None:
        tmp, tag = self.tmp, self.tag
        www = tmp / "www"
        www.mkdir()
        (www / "index.html").write_text(BIRTHDAY)
        # nginx's workers run as nobody: the folders must be readable by all
        os.chmod(tmp, 0o755)
        os.chmod(www, 0o755)
        os.chmod(www / "index.html", 0o644)
        self.env = {**os.environ, "NETPLUMB_STATE_DIR": str(tmp / "state")}
        # netplumb runs in the lab's machine namespace through `ip netns exec`, whose fresh /sys
        # hides the cgroup mounts: the machine's cgroup v2 root is mounted again where it can
        # see it, so that it sends connections to 127.0.0.1:PORT to the guest (kernel/socklb.py)
        # for the clients here, as a netplumb run in the machine's own namespace does for a
        # user's. Unmounted at close (the programs go with the last published port).
        if cgroup_root():
            self.cgroup = tmp / "cgroup2"
            self.cgroup.mkdir()
            run("mount", "-t", "cgroup2", "none", str(self.cgroup))
            self.env["NETPLUMB_SOCKLB_CGROUP"] = str(self.cgroup)
        self.machine = self.netns(f"npb-{tag}-ports")
        self.lan = self.netns(f"npb-{tag}-lan")
        self.behind = self.netns(f"npb-{tag}-behind")
        self.veth(self.lan, LAN_MACHINE, LAN_NEIGHBOUR, "lan0")
        self.veth(self.behind, BEHIND_MACHINE, BEHIND_SERVER, "behind0")
        run("ip", "-n", self.lan, "route", "add", BEHIND_NET, "via", LAN_MACHINE)
        run("ip", "-n", self.behind, "route", "add", "default", "via", BEHIND_MACHINE)
        run("ip", "netns", "exec", self.machine, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lan_p = [f"{LAN_MACHINE}:19080:8080", f"{LAN_MACHINE}:19201:5201"]
        local_p = ["127.0.0.1:18080:8080", "127.0.0.1:15201:5201"]
        publish = [a for spec in (*local_p, *lan_p) for a in ("-p", spec)]
        cmd = self.servers_cmd("guest", 8080, 5201)
        self.np("run", "--name", "srv", *publish, "--", "sh", "-c", cmd)
        self.np("run", "--name", "cli", "--", "sleep", "infinity")
        guests = {g["name"]: g for g in json.loads(self.np("ps", "--json"))}
        srv_ip = guests["srv"]["addresses"][0].split("/")[0]
        srv, cli = (Where(f"guest {n}", pid=int(guests[n]["pid"])) for n in ("srv", "cli"))
        for g in (srv, cli):
            self.inodes[os.stat(f"/proc/{g.pid}/ns/net").st_ino] = f"{g.label}'s netns"
        # the ceiling, and the LAN baseline: plain processes in plain namespaces
        self.spawn(self.machine, self.servers_cmd("loopback", 38080, 35201))
        self.spawn(self.behind, self.servers_cmd("behind", 8080, 5201))
        # Docker: the same servers in a container, host binaries mounted read-only
        run("bash", str(ROOT / "scripts" / "busybox-image.sh"))
        self.container = f"npb-{tag}"
        d = tmp / "nginx-docker"
        nginx = self.nginx("docker", 8080, seen=Path("/srv/nginx"))
        run(
            "docker", "run", "-d", "--name", self.container,
            "--tmpfs", "/tmp",  # iperf3 keeps its stream buffer in a temporary file
            "-p", "127.0.0.1:25201:5201", "-p", "127.0.0.1:28080:8080",
            "-v", "/usr:/usr:ro",
            "-v", "/lib:/lib:ro",  # Debian's /lib and /lib64 are links into /usr: the loader
            "-v", "/lib64:/lib64:ro",
            "-v", f"{www}:/srv/www:ro", "-v", f"{d}:/srv/nginx",
            IMAGE, "sh", "-c", f"/usr/bin/iperf3 -s -p 5201 & {shlex.join(nginx)} & wait",
        )  # fmt: skip
        cpid = int(run("docker", "inspect", "-f", "{{.State.Pid}}", self.container))
        self.inodes[os.stat(f"/proc/{cpid}/ns/net").st_ino] = "the container's netns"
        fsrv, fcli = self.floor()
        mach, lan = Where("machine ns", ns=self.machine), Where("lan ns", ns=self.lan)
        box = Where("container", pid=cpid)
        self.paths = [
            BenchPath("direct", "127.0.0.1", mach, srv, srv_ip, 8080, 5201, ""),
            BenchPath("direct again", "127.0.0.1", mach, srv, srv_ip, 8080, 5201, "direct",
                      "the direct path a second time: how far a path differs from itself"),
            BenchPath("netplumb -p", "127.0.0.1", mach, srv, "127.0.0.1", 18080, 15201, "direct"),
            BenchPath("docker -p", "127.0.0.1", Where("machine"), box, "127.0.0.1", 28080, 25201,
                      "direct", "from the machine's own namespace, Docker's userland proxy"),
            BenchPath("loopback", "127.0.0.1", mach, mach, "127.0.0.1", 38080, 35201, "direct",
                      "the ceiling: no bridge, no translation"),
            BenchPath("lan direct", "lan", lan, Where("behind ns", ns=self.behind),
                      BEHIND_SERVER, 8080, 5201, "",
                      "to a plain namespace routed behind the machine, the same hops"),
            BenchPath("lan -p", "lan", lan, srv, LAN_MACHINE, 19080, 19201, "lan direct"),
            BenchPath("hairpin direct", "hairpin", cli, srv, srv_ip, 8080, 5201, "",
                      "a second guest to the server guest's own address"),
            BenchPath("hairpin -p", "hairpin", cli, srv, LAN_MACHINE, 19080, 19201,
                      "hairpin direct", "the second guest through the machine's LAN address"),
            BenchPath("hairpin self", "hairpin", srv, srv, LAN_MACHINE, 19080, 19201,
                      "hairpin direct", "the server guest to its own published port; its "
                      "honest direct peer is the other guest's direct figure"),
            BenchPath("floor direct", "floor", mach, fsrv, FLOOR_SRV, 8080, 5201, "",
                      "the floor: a plain namespace on a plain bridge, no netplumb"),
            BenchPath("floor -p", "floor", mach, fsrv, "127.0.0.1", 17080, 17201,
                      "floor direct", "the floor: the fewest nftables rules for the same DNAT"),
            BenchPath("floor lan -p", "floor", lan, fsrv, LAN_MACHINE, 29080, 29201,
                      "lan direct", "the floor: the LAN neighbour through the same rules"),
            BenchPath("floor hairpin direct", "floor", fcli, fsrv, FLOOR_SRV, 8080, 5201, "",
                      "the floor: a second plain namespace to the server's address"),
            BenchPath("floor hairpin -p", "floor", fcli, fsrv, LAN_MACHINE, 29080, 29201,
                      "floor hairpin direct", "the floor: the second namespace through the "
                      "machine's LAN address"),
        ]  # fmt: skip
        for p in list(self.paths):
            try:
                wait_port(p.client, p.host, p.http_port, 5 if p.group == "hairpin" else 20)
                wait_port(p.client, p.host, p.iperf_port, 5 if p.group == "hairpin" else 20)
            except SystemExit as e:
                if p.group != "hairpin":
                    raise
                # measured as missing, not a reason to measure nothing
                self.unreachable[p.name] = str(e)
                self.paths.remove(p)

    def floor(self) -> tuple[Where, Where]:
        """The floor's bridge, namespaces, servers and rules (``FLOOR_NFT``): its server and
        its second namespace."""
        m, tag = self.machine, self.tag
        run("ip", "-n", m, "link", "add", FLOOR_BRIDGE, "type", "bridge")
        for addr in (f"{FLOOR_GW}/16", f"{FLOOR_NAT_LOCAL}/32", f"{FLOOR_NAT_HAIRPIN}/32"):
            run("ip", "-n", m, "addr", "add", addr, "dev", FLOOR_BRIDGE)
        run("ip", "-n", m, "link", "set", FLOOR_BRIDGE, "up")
        localnet = f"net.ipv4.conf.{FLOOR_BRIDGE}.route_localnet=1"  # 127.0.0.1 DNATed out
        run("ip", "netns", "exec", m, "sysctl", "-qw", localnet)
        for role, addr in (("fsrv", FLOOR_SRV), ("fcli", FLOOR_CLI)):
            ns = self.netns(f"npb-{tag}-{role}")
            self.floor_ns.append(ns)
            port = f"npf-{role}"
            run("ip", "-n", m, "link", "add", port, "type", "veth", "peer", "eth0", "netns", ns)
            run("ip", "-n", m, "link", "set", port, "master", FLOOR_BRIDGE, "up")
            run("ip", "-n", ns, "addr", "add", f"{addr}/16", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "route", "add", "default", "via", FLOOR_GW)
        run("ip", "netns", "exec", m, "nft", "-f", "-", input=FLOOR_NFT)
        self.spawn(self.floor_ns[0], self.servers_cmd("floor", 8080, 5201))
        fsrv, fcli = self.floor_ns
        return Where("floor srv ns", ns=fsrv), Where("floor cli ns", ns=fcli)

    def close(self) -> list[str]:
        """Remove everything this lab made; what is left running or existing afterwards."""
        if self.machine:
            for g in ("srv", "cli"):
                subprocess.run(
                    ["ip", "netns", "exec", self.machine, str(VENV / "netplumb"), "rm", "-f", g],
                    env=self.env,
                    capture_output=True,
                    check=False,
                )
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if self.container:
            subprocess.run(["docker", "rm", "-f", self.container], capture_output=True, check=False)
        for ns in (self.machine, self.lan, self.behind, *self.floor_ns):
            if ns:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        if self.cgroup is not None:
            subprocess.run(["umount", str(self.cgroup)], capture_output=True, check=False)
            if os.path.ismount(self.cgroup):
                # never rmtree through a cgroup mount (it would remove the machine's cgroups)
                return [*self.leftovers(), f"mount {self.cgroup}"]
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.leftovers()

    def leftovers(self) -> list[str]:
        """Processes in any namespace of this run, or with its folder on their command line or
        among their open files (nginx's workers hold its error log); its namespaces and its
        container if they still exist."""
        left = []
        tmp = str(self.tmp)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if int(pid) == os.getpid():
                continue
            try:
                inode = os.stat(f"/proc/{pid}/ns/net").st_ino
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                fds = os.listdir(f"/proc/{pid}/fd")
                files = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
            except OSError:
                continue
            if inode in self.inodes or tmp in cmd or any(f.startswith(tmp) for f in files):
                left.append(f"pid {pid} ({self.inodes.get(inode, 'this run')}): {cmd.strip()}")
        names = run("ip", "netns", "list", check=False)
        made = (self.machine, self.lan, self.behind, *self.floor_ns)
        left += [f"netns {n}" for n in made if n and n in names]
        if self.container and run("docker", "ps", "-aq", "-f", f"name=^{self.container}$"):
            left.append(f"container {self.container}")
        return left


def wait_port(where: Where, host: str, port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [*where.prefix(), "nc", "-z", "-w", "1", host, str(port)],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {host}:{port} from {where.label}")
