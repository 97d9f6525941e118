"""The ``slurm_cluster`` fixture is a real Slurm: sbatch, job arrays, submitit and scancel work."""

import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ACTIVE = "PENDING,CONFIGURING,RUNNING,COMPLETING,SUSPENDED"


def wait_until(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not after {timeout} s: {what}")
        time.sleep(0.1)


def sbatch(cluster, *args: str) -> str:
    """Submit a batch job, return its id."""
    done = cluster.command("sbatch", "--parsable", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def job_states(cluster, job_id: str) -> list[str]:
    """The states squeue lists for a job's tasks still in the queue (empty once all ended)."""
    done = cluster.command("squeue", "-h", "-j", job_id, "-o", "%T", f"--states={ACTIVE}")
    return done.stdout.split() if done.returncode == 0 else []


def test_a_batch_job_runs_and_writes_a_file(slurm_cluster, tmp_path):
    out = tmp_path / "out.txt"
    job_id = sbatch(slurm_cluster, f"--chdir={tmp_path}", f"--output={tmp_path}/slurm-%j.out",
                    "--wrap", f'echo "job $SLURM_JOB_ID on $SLURMD_NODENAME" > {out}')
    wait_until(lambda: not job_states(slurm_cluster, job_id), 30, f"job {job_id} to finish")
    assert out.read_text() == f"job {job_id} on {slurm_cluster.node}\n"


def test_an_array_job_runs_each_task_once(slurm_cluster, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    job_id = sbatch(slurm_cluster, "--array=0-2", f"--output={tmp_path}/slurm-%A_%a.out",
                    "--wrap", f'echo "$SLURM_ARRAY_JOB_ID" >> {tasks}/"$SLURM_ARRAY_TASK_ID"')
    wait_until(lambda: not job_states(slurm_cluster, job_id), 30, f"array {job_id} to finish")
    assert sorted(p.name for p in tasks.iterdir()) == ["0", "1", "2"]
    for task in tasks.iterdir():
        assert task.read_text() == f"{job_id}\n"  # once each, all of the one array


def test_submitit_runs_a_function_on_the_cluster(slurm_cluster, submitit_folder):
    submitit = pytest.importorskip("submitit")
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)  # submitit's sbatch/sacct see it
    executor = submitit.AutoExecutor(folder=submitit_folder, cluster="slurm")
    executor.update_parameters(timeout_min=5, cpus_per_task=1, slurm_partition="debug")
    job = executor.submit(os.getenv, "SLURM_JOB_ID")  # a stdlib function: importable in the job
    assert job.result() == job.job_id


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_scancel_ends_a_running_job(slurm_cluster, tmp_path):
    pid_file = tmp_path / "pid"
    job_id = sbatch(slurm_cluster, f"--output={tmp_path}/slurm-%j.out",
                    "--wrap", f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} "
                              "&& exec sleep 300")
    wait_until(lambda: job_states(slurm_cluster, job_id) == ["RUNNING"] and pid_file.exists(),
               30, f"job {job_id} to run")
    pid = int(pid_file.read_text())
    assert _alive(pid)
    done = slurm_cluster.command("scancel", job_id)
    assert done.returncode == 0, done.stderr
    # never job.result() / sacct here: without slurmdbd a cancelled job is invisible to sacct
    wait_until(lambda: not job_states(slurm_cluster, job_id), 20, f"job {job_id} to leave squeue")
    wait_until(lambda: not _alive(pid), 10, f"the job's process {pid} to end")
