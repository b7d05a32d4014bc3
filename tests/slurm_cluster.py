"""A throw-away single-node Slurm cluster for the workflow's Slurm tests.

Needs Debian's `slurm-wlm` and `munge` (`.ci/run` installs them) and root. Everything lives in
one temporary directory (slurm.conf, state, spool, logs) except munge, which runs on its
standard socket. A fake GPU (gres `File=/dev/null`) lets GPU requests schedule. slurmd runs
"configless" (it fetches slurm.conf from slurmctld and caches it under /run/slurm/conf), so
client commands find the cluster without `SLURM_CONF`, as on many real clusters; Snakemake's
job steps drop SLURM_* variables, SLURM_CONF included.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SLURM_CONF = """\
ClusterName=eeg2fmri-test
SlurmctldParameters=enable_configless
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
GresTypes=gpu
MinJobAge=600
NodeName={host} CPUs={cpus} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def slurm_available() -> str | None:
    """None when a cluster can be started here, else the reason it cannot."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "munge", "sbatch", "squeue")
               if shutil.which(b) is None]
    if missing:
        return f"Slurm/munge not installed ({', '.join(missing)} missing)"
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root"
    return None


def _start_munge() -> None:
    """munged on its standard socket with the package's key (slurmd needs it there before it
    has fetched the config), unless one already answers."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
    subprocess.run(["munged", "--force"], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """slurmctld + slurmd + munged on this host, stopped (and killed) on exit."""

    def __init__(self, root: Path, cpus: int = 2, mem_mb: int = 4000):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.cpus, self.mem_mb = cpus, mem_mb
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, SLURM_CONF=str(root / "slurm.conf"))

    def __enter__(self) -> SlurmCluster:
        r = self.root
        for d in ("state", "spool"):
            (r / d).mkdir(parents=True, exist_ok=True)
        _start_munge()
        ports = (_free_port(), _free_port())
        conf = SLURM_CONF.format(host=self.host, root=r, cpus=self.cpus,
                                 mem_mb=self.mem_mb, ctld_port=ports[0], d_port=ports[1])
        (r / "slurm.conf").write_text(conf)
        (r / "gres.conf").write_text(f"NodeName={self.host} Name=gpu File=/dev/null\n")
        # slurmd fetches the config from slurmctld ("configless") and caches it where client
        # commands without SLURM_CONF find it: Snakemake's job steps drop SLURM_* variables.
        ctld = ["slurmctld", "-D", "-f", str(r / "slurm.conf")]
        slurmd = ["slurmd", "-D", "--conf-server", f"{self.host}:{ports[0]}"]
        for cmd in (ctld, slurmd):
            log = open(r / f"{cmd[0]}.out", "w")  # noqa: SIM115 - closed with the process
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log))
            time.sleep(0.5 if cmd is ctld else 0)
        self._wait_idle()
        return self

    def _wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True,
                                 text=True)
            if out.returncode == 0 and out.stdout.strip() == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"Slurm node not idle after {timeout} s: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.root.glob("slurm*.log"))
                         if p.exists())

    def __exit__(self, *exc) -> None:
        subprocess.run(["scancel", "--user=root"], env=self.env, capture_output=True)
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
