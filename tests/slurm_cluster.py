"""A real single-node Slurm cluster for tests: installed where missing, started, always stopped.

munged, slurmctld and slurmd run as plain background processes (no systemd, no cgroups), all
files inside one folder under /tmp, on free ports. Fixtures: ``slurm_cluster`` (session) and
``submitit_folder`` (a fresh folder per test). Needs root; skips without it (fails in CI).
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "sacct")
PACKAGES = ("slurm-wlm", "munge")
INSTALL_LOG = Path(tempfile.gettempdir()) / "slurm-cluster-install.log"
INSTALL_LOCK = Path(tempfile.gettempdir()) / "slurm-cluster-install.lock"
START_TIMEOUT = 30.0


def _which(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:{SBIN_PATH}")


def _missing() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if _which(name) is None]


def _install() -> str | None:
    """apt-get the packages (once per machine at a time); None on success, else why not."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "update", "-qq"],
             ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]]
    with open(INSTALL_LOCK, "w") as lock, open(INSTALL_LOG, "a") as log:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel session may be installing too
        if not _missing():
            return None
        for step in steps:
            log.write(f"$ {' '.join(step)}\n")
            log.flush()
            done = subprocess.run(step, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, env=env, timeout=900)
            if done.returncode:
                return f"`{' '.join(step)}` failed (exit {done.returncode}); see {INSTALL_LOG}"
    return None


@functools.cache
def slurm_unavailable() -> str | None:
    """Why a Slurm cluster cannot be had here (None when it can); installs it first as root."""
    missing = _missing()
    if os.geteuid() != 0:
        if missing:
            return f"Slurm is not installed ({', '.join(missing)} missing) and we are not root"
        return "slurmd and munged need root to run jobs, and we are not root"
    if missing:
        if _which("apt-get") is None:
            return f"Slurm is not installed ({', '.join(missing)} missing) and there is no apt-get"
        why = _install()
        if why:
            return why
        missing = _missing()
        if missing:
            return f"installed {' '.join(PACKAGES)} but {', '.join(missing)} still missing"
    return None


@dataclass
class SlurmCluster:
    """One running single-node cluster: its folder, slurm.conf and the env its clients need."""

    root: Path
    conf: Path
    env: dict[str, str]
    node: str
    cpus: int
    daemons: list[subprocess.Popen] = field(default_factory=list, repr=False)
    stopped: bool = False

    def command(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a Slurm client command (sbatch, squeue, ...) against this cluster; text output."""
        return subprocess.run(list(args), env={**os.environ, **self.env}, text=True,
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no job is left in the queue; TimeoutError naming the jobs otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            queue = self.command("squeue", "-h", "-o", "%i %T").stdout.strip()
            if not queue:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued after {timeout} s: {queue}")
            time.sleep(0.2)

    def stop(self) -> None:
        """End every process this cluster started (daemons, slurmstepd, job tasks); idempotent."""
        if self.stopped:
            return
        self.stopped = True
        munged = [p for p in self.daemons if p.args and "munged" in str(p.args[0])]
        for proc in reversed([p for p in self.daemons if p not in munged]):
            _terminate(proc)
        _kill_strays(str(self.conf))
        for proc in munged:  # last: slurmstepd talks to it while it ends
            _terminate(proc)

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every daemon log, to explain a failed start."""
        parts = []
        for log in sorted(self.root.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _terminate(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM a daemon we started, SIGKILL it after ``grace`` seconds, and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process we can read in /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def _environ(pid: int) -> list[bytes]:
    """The environment ``pid`` started with (empty when unreadable, e.g. a zombie)."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _started_by(conf: str, pid: int, cmdline: str) -> bool:
    """Whether ``pid`` is a slurmstepd or job task of the cluster whose slurm.conf is ``conf``."""
    env = _environ(pid)
    if f"SLURM_CONF={conf}".encode() not in env:
        return False
    return "slurmstepd" in cmdline or any(v.startswith(b"SLURM_JOB_ID=") for v in env)


def _kill_strays(conf: str, timeout: float = 5.0) -> None:
    """SIGKILL this cluster's slurmstepd and job processes (SLURM_CONF=conf) and all below them."""
    deadline = time.monotonic() + timeout
    while True:
        table = _proc_table()
        ours = {pid for pid, (_, cmd) in table.items() if _started_by(conf, pid, cmd)}
        grew = True
        while grew:  # add descendants: the job's tasks
            below = {pid for pid, (ppid, _) in table.items() if ppid in ours} - ours
            ours |= below
            grew = bool(below)
        ours.discard(os.getpid())
        if not ours or time.monotonic() > deadline:
            return
        for pid in ours:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound then released together, so they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _node_hardware() -> tuple[str, int, int]:
    """This machine as slurmd sees it: the topology fields of ``slurmd -C``, CPUs, memory MB."""
    out = subprocess.run([_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=30, check=True).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    topology = " ".join(f"{key}={fields[key]}" for key in
                        ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
                        if key in fields)
    return topology, int(fields["CPUs"]), int(fields["RealMemory"])


def _write_conf(root: Path, node: str, topology: str, memory_mb: int) -> Path:
    """slurm.conf for one node on 127.0.0.1: no accounting, no cgroups, immediate scheduling."""
    ctld_port, slurmd_port = _free_ports(2)
    real_memory = max(256, min(memory_mb - 512, int(memory_mb * 0.9)))  # else the node drains
    lines = [
        "ClusterName=benchtest", f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}",
        "AuthType=auth/munge", "CredType=cred/munge",
        # cred_expire: also how long a requeued job waits to start again (default 120 s)
        f"AuthInfo=socket={root / 'munge.socket'},cred_expire=10",
        "SlurmUser=root", "SlurmdUser=root", "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "KillWait=2", "MinJobAge=2", "ReturnToService=2", "SlurmdTimeout=60",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
        "SlurmctldDebug=info", "SlurmdDebug=info",
        f"NodeName={node} NodeAddr=127.0.0.1 {topology} RealMemory={real_memory} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _make_root() -> Path:
    """A fresh folder under /tmp whose whole chain is world-executable (munged insists)."""
    root = Path(tempfile.mkdtemp(prefix="slurm-cluster-", dir="/tmp"))
    root.chmod(0o755)
    for sub in ("state", "spool"):
        (root / sub).mkdir(mode=0o755)
    return root


def _write_munge_key(path: Path) -> None:
    """A new munge key only this cluster uses, readable by its owner alone."""
    mungekey = _which("mungekey")
    if mungekey:
        subprocess.run([mungekey, "-c", "-k", str(path)], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=30, check=True)
    else:
        path.write_bytes(os.urandom(1024))
    path.chmod(0o400)


def _spawn(cluster: SlurmCluster, name: str, *args: str) -> None:
    """Start a daemon in the foreground of its own session, its output into ``name``.out."""
    out = open(cluster.root / f"{name}.out", "wb")
    try:
        proc = subprocess.Popen([_which(name) or name, *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **cluster.env}, cwd=cluster.root)
    finally:
        out.close()
    cluster.daemons.append(proc)


def _wait_for(cluster: SlurmCluster, what: str, ready: Callable[[], bool],
              timeout: float = START_TIMEOUT) -> None:
    """Poll ``ready()`` until true; RuntimeError with the logs if a daemon died or time ran out."""
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [p.args[0] for p in cluster.daemons if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(dead)} exited" if dead else f"not after {timeout} s"
            raise RuntimeError(f"Slurm cluster: waiting for {what}: {why}\n{cluster.log_tails()}")
        time.sleep(0.1)


def _node_idle(cluster: SlurmCluster) -> bool:
    done = cluster.command("sinfo", "-h", "-o", "%T", timeout=10)
    return done.returncode == 0 and done.stdout.split() == ["idle"]


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd with everything in ``root``; return when the node is idle.

    ``root`` must be world-executable all the way up (see ``_make_root``). On failure whatever
    was started is stopped before the error propagates.
    """
    node = socket.gethostname().split(".")[0]
    topology, cpus, memory_mb = _node_hardware()
    conf = _write_conf(root, node, topology, memory_mb)
    cluster = SlurmCluster(root=root, conf=conf, env={"SLURM_CONF": str(conf)}, node=node,
                           cpus=cpus)
    try:
        key, sock = root / "munge.key", root / "munge.socket"
        _write_munge_key(key)
        _spawn(cluster, "munged", "--foreground", "--force", f"--socket={sock}",
               f"--key-file={key}", f"--pid-file={root / 'munged.pid'}",
               f"--log-file={root / 'munged.log'}", f"--seed-file={root / 'munged.seed'}")
        _wait_for(cluster, "munged's socket", sock.exists)
        _spawn(cluster, "slurmctld", "-D", "-i", "-f", str(conf))
        _wait_for(cluster, "slurmctld",
                  lambda: cluster.command("scontrol", "ping", timeout=10).stdout.count("UP") > 0)
        _spawn(cluster, "slurmd", "-D", "-N", node, "-f", str(conf))
        _wait_for(cluster, "the node to be idle", lambda: _node_idle(cluster))
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A started single-node cluster, its env also in os.environ for the session (submitit)."""
    why = slurm_unavailable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"Slurm cluster unavailable in CI: {why}")
        pytest.skip(f"Slurm cluster unavailable: {why}")
    root = _make_root()
    try:
        cluster = start_cluster(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    saved = {name: os.environ.get(name) for name in cluster.env}
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def submitit_folder(tmp_path: Path) -> Path:
    """A fresh submitit folder per test (job ids restart at 1 on a new cluster: never share)."""
    folder = tmp_path / "submitit"
    folder.mkdir()
    return folder
