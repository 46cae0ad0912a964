"""Job scripts from the campaign's cluster section, checked as plain strings."""

from __future__ import annotations

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
