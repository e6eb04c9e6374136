"""The one executor under `experiment` and `explore`: the same failure handling on every engine."""

import os

import pytest

from eirnn_fast import cli
from eirnn_fast.executor import Executor, WorkerDied


def _task(x):
    if x == "fail":
        raise RuntimeError("broken config")
    if x == "die":
        os._exit(17)  # a killed worker
    return x * 2


@pytest.mark.parametrize("engine", ["serial", "local"])
def test_a_raising_task_is_a_failed_task_and_the_others_run(engine):
    with Executor(engine, 2) as ex:
        got = {task: outcome for task, outcome in ex.run(_task, [1, "fail", 3])}
    assert got[1].ok and got[1].value == 2 and got[3].value == 6
    assert not got["fail"].ok and got["fail"].error == "RuntimeError: broken config"
    assert "broken config" in got["fail"].traceback


def test_a_dying_worker_raises_after_the_finished_tasks_were_reported():
    seen = []
    with Executor("local", 1) as ex:  # one worker: 1 and 3 finish before "die" starts
        with pytest.raises(WorkerDied, match="worker process died.*run the same command again to resume"):
            for task, outcome in ex.run(_task, [1, 3, "die"]):
                seen.append((task, outcome.value))
    assert sorted(seen) == [(1, 2), (3, 6)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="engine must be one of"):
        Executor("threads")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        Executor("local", 0)


def test_a_dead_worker_is_one_line_and_status_1_on_the_command_line(monkeypatch, capsys):
    # `experiment` / `explore` over a pool whose worker was killed: no traceback, the resume hint
    def dies(*args, **kwargs):
        with Executor("local", 1) as ex:
            list(ex.run(_task, ["die"]))

    monkeypatch.setattr(cli.experiment, "run_suite", dies)
    assert cli.main(["experiment", "phase2", "--quick", "--out", "unused"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("eirnn-fast experiment: error: a worker process died"), err
    assert "run the same command again to resume" in err[0]
