"""The package's one process pool (runtime/pool.py): results reported here, a dead worker's jobs
handed back, an error in a job stopping the round."""
from __future__ import annotations

import os
from collections import deque

import pytest

from persam_video.runtime.pool import pool_round


def act(job: int) -> int:
    """A job: its square; a negative job kills its worker, 99 raises."""
    if job < 0:
        os._exit(3)
    if job == 99:
        raise ValueError("job 99 failed")
    return job * job


def test_every_job_is_reported_with_its_result_and_the_queue_is_emptied():
    reported = {}
    queue = deque([1, 2, 3, 4, 5])
    assert pool_round(queue, act, 2, reported.__setitem__) == []
    assert reported == {1: 1, 2: 4, 3: 9, 4: 16, 5: 25} and not queue


def test_a_dead_worker_hands_its_jobs_back_and_starts_no_more():
    reported = {}
    queue = deque([4, -1, 2, 3])
    lost = pool_round(queue, act, 1, reported.__setitem__)  # one worker: the order of events is fixed
    assert lost == [-1] and list(queue) == [2, 3] and reported == {4: 16}


def test_an_error_in_a_job_goes_up_and_the_running_jobs_are_heard():
    heard = []
    with pytest.raises(ValueError, match="job 99 failed"):
        pool_round(deque([99, 7]), act, 1, lambda job, result: None, on_interrupt=heard.extend)
    assert heard == []  # one worker: nothing else was running when 99 failed
