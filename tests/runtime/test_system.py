"""The CPUs a process may use and the thread governor, on fake kernel files and a fake load."""
from __future__ import annotations

import pytest
import torch

from persam_video.runtime import system


def test_cgroup_quota_v2_and_v1(tmp_path):
    v2 = tmp_path / "cpu.max"
    v1 = (tmp_path / "quota", tmp_path / "period")
    v2.write_text("150000 100000\n")
    assert system.cgroup_cpu_quota(v2, v1) == 1.5
    v2.write_text("max 100000\n")
    assert system.cgroup_cpu_quota(v2, v1) is None
    v2.unlink()
    v1[0].write_text("200000\n")
    v1[1].write_text("100000\n")
    assert system.cgroup_cpu_quota(v2, v1) == 2.0
    v1[0].write_text("-1\n")
    assert system.cgroup_cpu_quota(v2, v1) is None
    v1[0].unlink()
    assert system.cgroup_cpu_quota(v2, v1) is None


def test_cpu_count_is_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(system.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(system, "cgroup_cpu_quota", lambda: 1.5)
    assert system.cpu_count() == 1
    monkeypatch.setattr(system, "cgroup_cpu_quota", lambda: 0.2)
    assert system.cpu_count() == 1
    monkeypatch.setattr(system, "cgroup_cpu_quota", lambda: None)
    assert system.cpu_count() == 4


def test_busy_seconds_counts_work_on_the_chosen_cpus(tmp_path):
    stat = tmp_path / "stat"
    tick = system.os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  30 0 10 500 7 0 0 0 0 0\ncpu0 10 0 5 200 7 1 1 1 0 0\ncpu1 20 0 5 300 0 0 0 0 0 0\n"
                    "intr 5\n")
    assert system.busy_seconds(None, stat) == pytest.approx((18 + 25) / tick)
    assert system.busy_seconds({1}, stat) == pytest.approx(25 / tick)
    assert system.busy_seconds(None, tmp_path / "missing") is None


@pytest.fixture
def fake_clock(monkeypatch):
    """A clock, our CPU time and the CPUs' busy time, all moved by hand."""
    state = {"now": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(system, "monotonic", lambda: state["now"])
    monkeypatch.setattr(system, "busy_seconds", lambda cpus=None: state["busy"])
    monkeypatch.setattr(system, "own_seconds", lambda: state["own"])
    monkeypatch.setattr(system, "cpu_count", lambda: 4)
    threads = torch.get_num_threads()
    yield state
    torch.set_num_threads(threads)


def advance(state, seconds, ours, others):
    state["now"] += seconds
    state["own"] += ours * seconds
    state["busy"] += (ours + others) * seconds


def test_governor_gives_torch_the_cpus_other_work_leaves(fake_clock):
    governor = system.ThreadGovernor(limit=4)
    assert torch.get_num_threads() == 4
    advance(fake_clock, 0.05, ours=4, others=0)
    assert governor.adjust() == 4  # too soon for a reading
    advance(fake_clock, 0.1, ours=3, others=1.0)
    assert governor.adjust() == 3 and torch.get_num_threads() == 3
    advance(fake_clock, 0.2, ours=1, others=3.0)
    assert governor.adjust() == 3  # the next reading waits for the interval
    advance(fake_clock, 0.4, ours=1, others=3.0)
    assert governor.adjust() == 1 and torch.get_num_threads() == 1
    advance(fake_clock, 1.0, ours=1, others=6.0)  # more work than CPUs: still one thread
    assert governor.adjust() == 1
    advance(fake_clock, 1.0, ours=1, others=0.2)  # the other work ended
    assert governor.adjust() == 4 and torch.get_num_threads() == 4


def test_governor_never_exceeds_its_limit_and_a_fixed_count_turns_it_off(fake_clock, monkeypatch):
    monkeypatch.delenv(system.THREADS_ENV)
    governor = system.ThreadGovernor(limit=2)
    advance(fake_clock, 1.0, ours=2, others=0)
    assert governor.adjust() == 2
    system.set_threads(None, workers=2)  # 4 CPUs, 2 workers: at most 2 each
    assert system._GOVERNOR["auto"].limit == 2
    system.set_threads(3)
    assert torch.get_num_threads() == 3 and not system._GOVERNOR
    system.adjust_threads()  # no governor: the count stays
    assert torch.get_num_threads() == 3


def test_the_environment_fixes_the_count_like_threads(fake_clock, monkeypatch):
    monkeypatch.setenv(system.THREADS_ENV, "3")
    system.set_threads(None)
    assert torch.get_num_threads() == 3 and not system._GOVERNOR
    system.set_threads(1)  # --threads wins
    assert torch.get_num_threads() == 1
    monkeypatch.setenv(system.THREADS_ENV, "many")
    with pytest.raises(system.PersamError, match="PERSAM_VIDEO_THREADS must be a number"):
        system.set_threads(None)


def test_running_children_count_as_this_process(tmp_path):
    tick = system.os.sysconf("SC_CLK_TCK")
    me = system.os.getpid()
    for pid, ppid, utime, stime in ((101, me, 30, 10), (102, 1, 500, 500), (103, me, 5, 5)):
        (tmp_path / str(pid)).mkdir()
        fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 5
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (ffmpeg (x)) " + " ".join(fields) + "\n")
    (tmp_path / "self").mkdir()
    assert system.running_children_seconds(tmp_path) == pytest.approx(50 / tick)  # not the other parent's
    assert system.running_children_seconds(tmp_path / "missing") == 0.0
