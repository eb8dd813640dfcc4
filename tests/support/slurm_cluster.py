"""A real single-node SLURM cluster on 127.0.0.1 for the profile test: munge, slurmctld and slurmd from
Debian, started as plain background daemons (no systemd) and stopped again by the test.

The config goes to /etc/slurm (job steps started inside a batch job look only there, not at
``SLURM_CONF``) and is removed afterwards; the test refuses to run where a slurm.conf already exists, so a
real cluster's config is never touched. State, spool, logs and PID files live in a scratch directory.
The node advertises one fake GPU (a GRES backed by /dev/null) so that GPU requests are scheduled and
``CUDA_VISIBLE_DEVICES`` is set, as on a real GPU node. The recipe was verified on these machines
(Slurm 22.05 and munge 0.5 from Debian 12).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")
MUNGED_PID = Path("/run/munge/munged.pid")  # munged runs as user munge: its PID file stays in its own dir
SLURM_CONF = Path("/etc/slurm/slurm.conf")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "munge", "unmunge")


def missing_requirements() -> str | None:
    """Why this machine cannot host the test cluster, or None when it can."""
    if os.geteuid() != 0:
        return "the SLURM test cluster runs its daemons as root"
    missing = [p for p in DAEMONS if not Path(p).exists()] + [c for c in CLIENTS if shutil.which(c) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install slurmctld slurmd slurm-client munge)"
    if SLURM_CONF.exists():
        return f"{SLURM_CONF} exists (a real cluster?); the test cluster will not replace it"
    if not Path("/etc/munge/munge.key").exists():
        return "no /etc/munge/munge.key (the munge package's postinst creates it)"
    return None


def _slurm_conf(root: Path, node: str, cpus: int, memory_mb: int) -> str:
    return f"""\
ClusterName=mixmiltest
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:testgpu:1 State=UNKNOWN
PartitionName=cpu Nodes={node} Default=YES MaxTime=04:00:00 State=UP
PartitionName=gpu Nodes={node} Default=NO MaxTime=04:00:00 State=UP
"""


def _munge_works() -> bool:
    munge = subprocess.run(["munge", "-n"], capture_output=True)
    if munge.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=munge.stdout, capture_output=True).returncode == 0


def _wait(condition, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    detail = f"\n{log.read_text()[-3000:]}" if log is not None and log.exists() else ""
    raise RuntimeError(f"test SLURM cluster: {what} not ready after {timeout:.0f} s{detail}")


def _kill_pidfile(path: Path) -> None:
    """SIGTERM the daemon named by a PID file and wait until it is gone (its ports free for the next run)."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
        except OSError:
            return True
        return state == "Z"  # exited; only its (non-child) parent has not reaped it yet

    _wait(gone, 20, f"shutdown of PID {pid}")


@contextlib.contextmanager
def slurm_cluster(root: Path) -> Iterator[dict[str, str]]:
    """Start the cluster, yield the environment that points clients at it, and stop what was started."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)
    node = socket.gethostname().split(".")[0]
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    if SLURM_CONF.exists():
        raise RuntimeError(f"{SLURM_CONF} exists; the test cluster will not replace it")
    conf, gres = SLURM_CONF, SLURM_CONF.with_name("gres.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(_slurm_conf(root, node, os.cpu_count() or 1, int(memory_mb * 0.8)))
    # The fake GPU; slurmd reads gres.conf from the directory of slurm.conf.
    gres.write_text(f"NodeName={node} Name=gpu Type=testgpu File=/dev/null\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}

    munged = None
    try:
        if not _munge_works():  # reuse a running munged (e.g. a real one on this host), else start ours
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            start = ["runuser", "-u", "munge", "--", "/usr/sbin/munged"]
            munged = subprocess.run(start, capture_output=True, text=True)
            if munged.returncode != 0:
                raise RuntimeError(f"test SLURM cluster: munged failed to start: {munged.stderr}")
            _wait(_munge_works, 10, "munge")
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], env=env, check=True)
        _wait(lambda: (root / "slurmctld.pid").exists(), 20, "slurmctld", root / "slurmctld.log")
        subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], env=env, check=True)

        def node_idle() -> bool:
            sinfo = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            return sinfo.returncode == 0 and "idle" in sinfo.stdout

        _wait(node_idle, 30, "node (sinfo idle)", root / "slurmd.log")
        yield env
    finally:
        _kill_pidfile(root / "slurmd.pid")
        _kill_pidfile(root / "slurmctld.pid")
        if munged is not None:
            _kill_pidfile(MUNGED_PID)
        conf.unlink(missing_ok=True)
        gres.unlink(missing_ok=True)
