"""Job scripts from the campaign's cluster section, checked as plain strings."""

from __future__ import annotations

import subprocess

import dask
import pytest

from hts_mlff.schedule.clusters import ClusterError, make_jobqueue_cluster, worker_lifetime
from hts_mlff.spec import CampaignError, parse_campaign
from hts_mlff.spec.model import JobQueueClusterSpec
from tests.spec.test_load import GOOD


def _script(**fields) -> str:
    spec = JobQueueClusterSpec(**fields)
    with make_jobqueue_cluster(spec) as cluster:
        return cluster.job_script()


def test_slurm_gpu_job_with_gres_account_and_queue():
    script = _script(
        kind="slurm", cores=8, memory="64GB", walltime="01:00:00", queue="gpu", account="mat123", gpus_per_job=4
    )
    assert "#SBATCH --gres=gpu:4" in script
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH -A mat123" in script
    assert "#SBATCH -t 01:00:00" in script
    assert "--nworkers 4" in script  # one worker process per GPU
    assert "--resources GPU=1" in script
    lifetime, stagger = worker_lifetime("01:00:00")
    assert (lifetime, stagger) == (3168, 72)
    assert f"--lifetime {lifetime}s --lifetime-stagger {stagger}s" in script


def test_slurm_gpus_directive_variant():
    script = _script(kind="slurm", cores=4, memory="8GB", gpus_per_job=2, gpu_directive="gpus")
    assert "#SBATCH --gpus=2" in script and "--gres" not in script


def test_pbs_gpu_job():
    script = _script(
        kind="pbs",
        cores=4,
        memory="16GB",
        walltime="02:00:00",
        queue="gpuq",
        account="proj7",
        gpus_per_job=1,
        job_extra_directives=["-l place=scatter"],
    )
    assert "#PBS -q gpuq" in script
    assert "#PBS -A proj7" in script
    assert "#PBS -l ngpus=1" in script
    assert "#PBS -l place=scatter" in script
    assert "#PBS -l walltime=02:00:00" in script


def test_only_overrides_are_passed_the_rest_comes_from_jobqueue_yaml():
    with dask.config.set(
        {
            "jobqueue.slurm.cores": 6,
            "jobqueue.slurm.memory": "12GB",
            "jobqueue.slurm.queue": "from-config",
            "jobqueue.slurm.walltime": "00:30:00",
        }
    ):
        script = _script(kind="slurm")
        assert "#SBATCH -p from-config" in script
        assert "#SBATCH --cpus-per-task=6" in script
        assert "--lifetime" in script  # derived from the configured walltime
        overridden = _script(kind="slurm", queue="short")
        assert "#SBATCH -p short" in overridden


def test_missing_cores_and_memory_is_a_clear_error():
    with (
        dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}),
        pytest.raises(ClusterError, match="cores"),
    ):
        make_jobqueue_cluster(JobQueueClusterSpec(kind="slurm"))


@pytest.mark.parametrize("bad", ["--qos=x; rm -rf ~", "--mail-user=`id`", "--comment=$(whoami)", "a\\nb"])
def test_shell_injection_is_refused_with_its_line(bad):
    text = GOOD + f'cluster:\n  kind: slurm\n  job_script_prologue:\n    - "module load cuda"\n    - "{bad}"\n'
    with pytest.raises(CampaignError) as info:
        parse_campaign(text, file="c.yaml")
    (problem,) = info.value.problems
    assert problem.path == "cluster.job_script_prologue[1]"
    assert problem.line == 20
    assert "must not" in problem.message


#: What an attacker would put in a field that reaches a job script or the worker's command line.
INJECTIONS = [
    "x && touch PWNED",
    "x || touch PWNED",
    "x | touch PWNED",
    "x & touch PWNED &",
    "x; touch PWNED",
    "x `touch PWNED`",
    "x $(touch PWNED)",
    "${IFS}touch${IFS}PWNED",
    "x > PWNED",
    "x < /etc/passwd",
    "x' ; touch PWNED ; '",
    'x" ; touch PWNED ; "',
    "x\ntouch PWNED",
    "x\rtouch PWNED",
]
FIELDS = ["config_name", "memory", "queue", "account", "local_directory", "log_directory", "interface", "python"]


@pytest.mark.parametrize("field", FIELDS)
def test_every_injection_string_is_refused_in_every_script_field(field, tmp_path):
    for bad in INJECTIONS:
        if field in ("local_directory", "python") and bad.startswith("${IFS}"):
            # a plain $VAR reference is allowed in a worker path; it is one quoted word there
            fields = {"python": "/bin/true", "local_directory": "/tmp", field: bad}
            script = _script(kind="slurm", cores=1, memory="1GB", **fields)
            subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
            assert not (tmp_path / "PWNED").exists(), script  # (as python: "no such command", nothing run)
            continue
        with pytest.raises(ValueError, match=field):
            JobQueueClusterSpec(kind="slurm", **{field: bad})


def test_directives_refuse_what_could_leave_their_comment_line():
    """A directive is a '#SBATCH …' line, a comment to bash ('|' and '&' are SLURM constraint
    syntax there); what could end the line or be expanded by a shell is refused."""
    for bad in [s for s in INJECTIONS if any(c in s for c in "\n\r;`$'\"<>")]:
        with pytest.raises(ValueError, match="job_extra_directives"):
            JobQueueClusterSpec(kind="slurm", job_extra_directives=[f"--comment={bad}"])
    with pytest.raises(ValueError, match="must start with '-'"):
        JobQueueClusterSpec(kind="slurm", job_extra_directives=["touch PWNED"])


def test_allowed_values_render_a_script_that_runs_nothing_but_the_worker(tmp_path):
    """Values the allow-lists accept (paths, $VAR references, directive values with | and &)
    give a script that bash runs without creating anything: the worker command is /bin/true."""
    spec = JobQueueClusterSpec(
        kind="slurm",
        cores=2,
        memory="4GB",
        queue="gpu",
        account="mat-123",
        python="/bin/true",
        local_directory="$TMPDIR/dask-${USER}",
        log_directory=str(tmp_path / "logs"),
        interface="lo",
        job_extra_directives=["--constraint=a100|h100&x", "--comment=x && touch PWNED | cat"],
    )
    with make_jobqueue_cluster(spec) as cluster:
        script = cluster.job_script()
    assert '--local-directory "$TMPDIR/dask-${USER}"' in script
    assert "#SBATCH --constraint=a100|h100&x" in script
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "PWNED").exists()
